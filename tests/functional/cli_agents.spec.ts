import { test } from '@japa/runner'
import { execFile, execFileSync } from 'node:child_process'
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { baseUrl, resetDatabase, seedChannel, seedUser, startMock, usageRows } from '#tests/helpers'

/**
 * The coding agents themselves, end to end through the gateway to the mock
 * upstream. Each test runs only when its CLI is on PATH and is skipped
 * otherwise. They are not dev dependencies (some 750 MB): `.ci/run` installs
 * the pinned versions of `.ci/agents/package.json` and puts them on PATH; by
 * hand, `npm ci --prefix .ci/agents` then
 * `PATH=$PWD/.ci/agents/node_modules/.bin:$PATH npm test -- --files tests/functional/cli_agents.spec.ts`.
 * Every CLI gets a fresh HOME and runs under a timeout; nothing leaves
 * loopback (their vendor lookups fail fast offline).
 */
function installed(binary: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${binary}`], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

function run(binary: string, args: string[], env: Record<string, string>, cwd: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = execFile(
      binary,
      args,
      { cwd, env: { PATH: process.env.PATH ?? '', ...env }, timeout: 90_000, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => resolve({ code: error ? ((error as any).code ?? 1) : 0, out: `${stdout}\n${stderr}` })
    )
    // No prompt on stdin: an open pipe makes `codex exec` and `gemini -p` wait to read one until the timeout.
    child.stdin?.end()
  })
}

function freshHome(): string {
  return mkdtempSync(join(tmpdir(), 'gw-cli-'))
}

test.group('Coding agents through the gateway (run only when installed)', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock({ text: 'hello from the mock ' })
    await seedChannel({ name: 'claude', provider: 'anthropic', baseUrl: mock.url, models: ['claude-*'] })
    await seedChannel({ name: 'chat', provider: 'deepseek', baseUrl: mock.url, models: ['gpt-*', 'deepseek-*'] })
    await seedChannel({ name: 'google', provider: 'google', baseUrl: `${mock.origin}/v1beta`, models: ['gemini-*'] })
    return () => mock.stop()
  })

  test('Claude Code: claude -p over /v1/messages (streaming, tools declared)', async ({ assert }) => {
    const user = await seedUser()
    const home = freshHome()
    const { out } = await run(
      'claude',
      ['-p', 'say hi', '--output-format', 'json'],
      { HOME: home, ANTHROPIC_BASE_URL: baseUrl(), ANTHROPIC_API_KEY: user.key, CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1' },
      home
    )
    assert.include(out, 'hello from the mock', out)
    const rows = await usageRows(user.userId)
    assert.isTrue(rows.some((r) => r.endpoint === 'messages' && r.status === 200))
  })
    .skip(!installed('claude'), 'claude (Claude Code) is not installed')
    .timeout(120_000)

  test('Codex CLI: codex exec over /v1/responses, translated to a chat-only channel', async ({ assert }) => {
    const user = await seedUser()
    const home = freshHome()
    writeFileSync(
      join(home, 'config.toml'),
      [
        'model = "deepseek-chat"',
        'model_provider = "gateway"',
        'check_for_update_on_startup = false',
        '[model_providers.gateway]',
        'name = "gateway"',
        `base_url = "${baseUrl()}/v1"`,
        'env_key = "GATEWAY_KEY"',
        'wire_api = "responses"',
        '[analytics]',
        'enabled = false',
      ].join('\n')
    )
    const { out } = await run('codex', ['exec', '--skip-git-repo-check', 'say hi'], { HOME: home, CODEX_HOME: home, GATEWAY_KEY: user.key }, home)
    assert.include(out, 'hello from the mock', out)
    const rows = await usageRows(user.userId)
    assert.isTrue(rows.some((r) => r.endpoint === 'responses' && r.status === 200))
  })
    .skip(!installed('codex'), 'codex (Codex CLI) is not installed')
    .timeout(120_000)

  test('Gemini CLI: gemini -p over /v1beta, native Gemini channel', async ({ assert }) => {
    const user = await seedUser()
    const home = freshHome()
    mkdirSync(join(home, '.gemini'))
    writeFileSync(
      join(home, '.gemini', 'settings.json'),
      JSON.stringify({ security: { auth: { selectedType: 'gemini-api-key' } }, privacy: { usageStatisticsEnabled: false } })
    )
    // A named model: on its default ("auto") the CLI first asks a flash-lite model to rate the prompt in
    // JSON, and retries for minutes when the answer (the mock's prose) is not that JSON.
    const { out } = await run(
      'gemini',
      ['-m', 'gemini-2.5-flash', '-p', 'say hi'],
      { HOME: home, GOOGLE_GEMINI_BASE_URL: baseUrl(), GEMINI_API_KEY: user.key, GEMINI_CLI_TRUST_WORKSPACE: 'true' },
      home
    )
    assert.include(out, 'hello from the mock', out)
    const rows = await usageRows(user.userId)
    assert.isTrue(rows.some((r) => r.endpoint.startsWith('gemini.') && r.status === 200))
  })
    .skip(!installed('gemini'), 'gemini (Gemini CLI) is not installed')
    .timeout(120_000)
})
