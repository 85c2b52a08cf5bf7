import { test } from '@japa/runner'
import type { Assert } from '@japa/assert'
import { execFile, execFileSync } from 'node:child_process'
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { MockUpstream, RecordedRequest } from '#tests/fixtures/mock_upstream/server'
import { upstreamTurns } from '#tests/conformance/upstream_turns'
import { baseUrl, resetDatabase, seedChannel, seedUser, startMock, usageRows } from '#tests/helpers'
import { SUMMARISATION_PROMPT, SUMMARY_PREFIX } from '#gateway/dialects/openai_responses/compaction'

/**
 * The coding agents themselves (Claude Code, Codex CLI, Gemini CLI,
 * OpenCode), end to end through the gateway to the mock
 * upstream. Each test runs only when its CLI is on PATH and is skipped
 * otherwise. They are not dev dependencies (some 750 MB): `.ci/run` installs
 * the pinned versions of `.ci/agents/package.json` and puts them on PATH; by
 * hand, `npm install --prefix .ci/agents` then
 * `PATH=$PWD/.ci/agents/node_modules/.bin:$PATH npm test -- --files tests/functional/cli_agents.spec.ts`.
 * Every CLI gets a fresh HOME and runs under a timeout; nothing leaves
 * loopback (their vendor lookups fail fast offline).
 *
 * The mock answers a request that offers tools with a call of the first one
 * (arguments the agent's tool rejects), then, given the tool's result, with
 * words: so each run is a two-turn agent loop with a tool result.
 */
function installed(binary: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${binary}`], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

function run(binary: string, args: string[], env: Record<string, string>, cwd: string): Promise<string> {
  return new Promise((resolve) => {
    const child = execFile(
      binary,
      args,
      { cwd, env: { PATH: process.env.PATH ?? '', ...env }, timeout: 90_000, maxBuffer: 16 * 1024 * 1024 },
      (_error, stdout, stderr) => resolve(`${stdout}\n${stderr}`)
    )
    // No prompt on stdin: an open pipe makes `codex exec` and `gemini -p` wait to read one until the timeout.
    child.stdin?.end()
  })
}

function freshHome(): string {
  return mkdtempSync(join(tmpdir(), 'gw-cli-'))
}

/** `claude -p` with the gateway as ANTHROPIC_BASE_URL (Claude Code's own model names: claude-*). */
function claudeCode(key: string): Promise<string> {
  // (run()'s 90 s timeout kills a CLI that keeps retrying: its output is then empty.)
  const home = freshHome()
  return run(
    'claude',
    ['-p', 'say hi', '--output-format', 'json'],
    { HOME: home, ANTHROPIC_BASE_URL: baseUrl(), ANTHROPIC_API_KEY: key, CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1' },
    home
  )
}

/** `codex exec` with the gateway as a custom Responses provider. */
function codex(key: string, model: string): Promise<string> {
  const home = freshHome()
  writeFileSync(
    join(home, 'config.toml'),
    [
      `model = "${model}"`,
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
  return run('codex', ['exec', '--skip-git-repo-check', 'say hi'], { HOME: home, CODEX_HOME: home, GATEWAY_KEY: key }, home)
}

/** `gemini -p` with the gateway as GOOGLE_GEMINI_BASE_URL. */
function geminiCli(key: string): Promise<string> {
  const home = freshHome()
  mkdirSync(join(home, '.gemini'))
  writeFileSync(
    join(home, '.gemini', 'settings.json'),
    JSON.stringify({ security: { auth: { selectedType: 'gemini-api-key' } }, privacy: { usageStatisticsEnabled: false } })
  )
  // A named model: on its default ("auto") the CLI first asks a flash-lite model to rate the prompt in
  // JSON, and retries for minutes when the answer (the mock's prose) is not that JSON.
  return run(
    'gemini',
    ['-m', 'gemini-2.5-flash', '-p', 'say hi'],
    { HOME: home, GOOGLE_GEMINI_BASE_URL: baseUrl(), GEMINI_API_KEY: key, GEMINI_CLI_TRUST_WORKSPACE: 'true' },
    home
  )
}

/**
 * `opencode run` with the gateway as a custom provider through the AI SDK's
 * OpenAI-compatible package, which OpenCode installs from the npm registry on
 * first use: into one cache shared by the runs, so only the first waits for it.
 */
function openCode(key: string, model: string): Promise<string> {
  const home = freshHome()
  writeFileSync(
    join(home, 'opencode.json'),
    JSON.stringify({
      provider: {
        gateway: {
          npm: '@ai-sdk/openai-compatible',
          name: 'Gateway',
          options: { baseURL: `${baseUrl()}/v1`, apiKey: key },
          models: { [model]: { name: model } },
        },
      },
      model: `gateway/${model}`,
      autoupdate: false,
      share: 'disabled',
    })
  )
  const cache = join(tmpdir(), 'gw-cli-opencode-cache')
  mkdirSync(cache, { recursive: true })
  return run('opencode', ['run', 'say hi'], { HOME: home, XDG_CACHE_HOME: cache, OPENCODE_DISABLE_AUTOUPDATE: '1' }, home)
}

/**
 * The user's usage rows once at least `count` are written. `usageRows` drains the meter, but an agent
 * can exit while the gateway is still closing the call it cut (its row not queued yet).
 */
async function waitForRows(userId: number, count: number) {
  for (let i = 0; i < 50; i++) {
    const rows = await usageRows(userId)
    if (rows.length >= count) return rows
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  return usageRows(userId)
}

/** The upstream paths the mock received since `from` (which wire format the gateway spoke). */
function upstreamPaths(mock: MockUpstream, from: number): string[] {
  return [...new Set(mock.requests.slice(from).map((r) => r.path.split('?')[0]))]
}

type AgentName = 'claude' | 'codex' | 'gemini' | 'opencode'

/** How each agent is run, which gateway endpoint it calls, and how many calls a run makes at least. */
const AGENTS: Record<AgentName, { label: string; endpoint: (name: string) => boolean; minCalls: number; launch: (key: string, model: string) => Promise<string> }> = {
  // Claude Code runs on its own default model (claude-*): `model` only names it in the test's title.
  claude: { label: 'Claude Code', endpoint: (e) => e === 'messages', minCalls: 2, launch: (key) => claudeCode(key) },
  codex: { label: 'Codex CLI', endpoint: (e) => e === 'responses', minCalls: 2, launch: codex },
  gemini: { label: 'Gemini CLI', endpoint: (e) => e.startsWith('gemini.'), minCalls: 2, launch: (key) => geminiCli(key) },
  // Its title request, the turn that calls a tool, the turn after the tool's result.
  opencode: { label: 'OpenCode', endpoint: (e) => e === 'chat.completions', minCalls: 3, launch: openCode },
}

interface AgentCase {
  agent: AgentName
  model: string
  /** What the channel was spoken to: the one upstream path of the run */
  upstream: string | RegExp
  title: string
  /** Further checks on the requests the upstream received */
  check?: (requests: RecordedRequest[], assert: Assert) => void
}

/**
 * One agent run end to end: the mock's words reach the agent, the gateway
 * spoke the expected format to the channel, and every call was metered.
 */
function agentTest(mock: () => MockUpstream, c: AgentCase) {
  const agent = AGENTS[c.agent]
  test(`${agent.label}: ${c.title}`, async ({ assert }) => {
    const user = await seedUser()
    const from = mock().requests.length
    const out = await agent.launch(user.key, c.model)
    assert.include(out, 'hello from the mock', out)
    const paths = upstreamPaths(mock(), from)
    assert.lengthOf(paths, 1, paths.join(', '))
    if (typeof c.upstream === 'string') assert.equal(paths[0], c.upstream)
    else assert.match(paths[0], c.upstream)
    c.check?.(mock().requests.slice(from), assert)
    const rows = await usageRows(user.userId)
    assert.isAtLeast(rows.length, agent.minCalls)
    for (const row of rows) assert.isTrue(agent.endpoint(row.endpoint) && row.status === 200, `${row.endpoint} ${row.status}`)
  })
    .skip(!installed(c.agent), `${c.agent} (${agent.label}) is not installed`)
    .timeout(180_000)
}

test.group('Coding agents through the gateway, in their own wire format (run only when installed)', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock({ text: 'hello from the mock ' })
    await seedChannel({ name: 'claude', provider: 'anthropic', baseUrl: mock.url, models: ['claude-*'] })
    await seedChannel({ name: 'chat', provider: 'deepseek', baseUrl: mock.url, models: ['deepseek-*'] })
    await seedChannel({ name: 'openai', provider: 'openai', baseUrl: mock.url, models: ['o4-*'] })
    await seedChannel({ name: 'google', provider: 'google', baseUrl: `${mock.origin}/v1beta`, models: ['gemini-*'] })
    return () => mock.stop()
  })

  const cases: AgentCase[] = [
    { agent: 'claude', model: 'claude-*', upstream: '/v1/messages', title: 'claude -p over /v1/messages to an Anthropic channel (streaming, tools, a tool result)' },
    { agent: 'codex', model: 'o4-mini', upstream: '/v1/responses', title: 'codex exec over /v1/responses to an OpenAI channel (passed through)' },
    { agent: 'opencode', model: 'deepseek-chat', upstream: '/v1/chat/completions', title: 'opencode run over /v1/chat/completions to an OpenAI-compatible channel' },
    { agent: 'gemini', model: 'gemini-2.5-flash', upstream: '/v1beta/models/gemini-2.5-flash:streamGenerateContent', title: 'gemini -p over /v1beta to a native Gemini channel' },
  ]
  for (const c of cases) agentTest(() => mock, c)

  test('a stream the upstream cuts mid-way: the agent retries or says so, and the cut call is metered', async ({ assert }) => {
    for (const [name, model] of [['claude', 'claude-*'], ['codex', 'o4-mini'], ['opencode', 'deepseek-chat'], ['gemini', 'gemini-2.5-flash']] as const) {
      if (!installed(name)) continue
      const user = await seedUser()
      // The agent's first upstream call is cut after one content delta.
      mock.script({ reset_after: 1 })
      const out = await AGENTS[name].launch(user.key, model)
      const rows = await waitForRows(user.userId, name === 'claude' ? 1 : AGENTS[name].minCalls)
      assert.lengthOf(rows.filter((r) => r.error_code === 'stream_interrupted'), 1, name)
      if (name === 'claude') {
        // Claude Code does not retry an error inside a stream (of any type): it ends the turn and shows the gateway's message.
        assert.include(out, 'Upstream stream failed', out)
        continue
      }
      // Codex reconnects, OpenCode and Gemini CLI retry the call: the session goes on.
      assert.include(out, 'hello from the mock', `${name}: ${out}`)
      assert.isAtLeast(rows.filter((r) => r.error_code === null && r.status === 200).length, AGENTS[name].minCalls - 1, name)
    }
  }).timeout(300_000)

  test('the provider says 429 with Retry-After: the agent waits, retries and finishes; the refused call is metered', async ({ assert }) => {
    for (const [name, model] of [['claude', 'claude-*'], ['codex', 'o4-mini'], ['opencode', 'deepseek-chat'], ['gemini', 'gemini-2.5-flash']] as const) {
      if (!installed(name)) continue
      const user = await seedUser()
      // The channel is the model's only one: the gateway answers the agent 429 with the provider's Retry-After
      // (and pauses that channel's model as long), in the agent's own error shape.
      mock.script({ status: 429, retry_after: 1 })
      const out = await AGENTS[name].launch(user.key, model)
      assert.include(out, 'hello from the mock', `${name}: ${out}`)
      const rows = await waitForRows(user.userId, AGENTS[name].minCalls + 1)
      assert.isAtLeast(rows.filter((r) => r.status === 429).length, 1, name)
      assert.isAtLeast(rows.filter((r) => r.status === 200).length, AGENTS[name].minCalls, name)
    }
  }).timeout(300_000)

  test('Claude Code: a wrong key or a model the key may not use is reported at once, not retried', async ({ assert }) => {
    // Without `x-should-retry: false` Claude Code retries a 401 ten times with backoff (~90 s).
    assert.include(await claudeCode('sk-gw-wrong'), 'Invalid API key')
    const user = await seedUser({ keyModels: ['gpt-*'] })
    assert.include(await claudeCode(user.key), 'is not permitted on your plan or key')
  })
    .skip(!installed('claude'), 'claude (Claude Code) is not installed')
    .timeout(200_000)
})

test.group('Coding agents through the gateway, translated to another wire format (run only when installed)', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock({ text: 'hello from the mock ' })
    // Each agent's models on a channel that speaks another format than the agent.
    await seedChannel({ name: 'chat', provider: 'deepseek', baseUrl: mock.url, models: ['claude-*', 'gemini-*', 'deepseek-*'] })
    await seedChannel({ name: 'claude', provider: 'anthropic', baseUrl: mock.url, models: ['gpt-*'] })
    return () => mock.stop()
  })

  const cases: AgentCase[] = [
    {
      agent: 'claude',
      model: 'claude-*',
      upstream: '/v1/chat/completions',
      title: 'on an OpenAI-compatible chat channel: Messages -> chat, no Anthropic cache marks sent',
      // Claude Code marks its system prompt and history with cache_control; a strict chat server refuses the field.
      check: (requests, assert) => requests.forEach((r) => assert.notInclude(r.body, 'cache_control')),
    },
    { agent: 'codex', model: 'deepseek-chat', upstream: '/v1/chat/completions', title: 'on a chat-only channel: Responses -> chat' },
    { agent: 'codex', model: 'gpt-5-codex', upstream: '/v1/messages', title: 'on an Anthropic channel: Responses -> Messages' },
    { agent: 'opencode', model: 'gpt-5', upstream: '/v1/messages', title: 'on an Anthropic channel: chat -> Messages' },
    { agent: 'gemini', model: 'gemini-2.5-flash', upstream: '/v1/chat/completions', title: 'on an OpenAI-compatible chat channel: Gemini -> chat' },
  ]
  for (const c of cases) agentTest(() => mock, c)
})

test.group('Coding agents through the gateway, translated to the remaining formats (run only when installed)', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock({ text: 'hello from the mock ' })
    await seedChannel({ name: 'google', provider: 'google', baseUrl: `${mock.origin}/v1beta`, models: ['claude-*', 'gpt-*'] })
    await seedChannel({ name: 'claude', provider: 'anthropic', baseUrl: mock.url, models: ['gemini-*'] })
    return () => mock.stop()
  })

  const cases: AgentCase[] = [
    // Gemini signs its function calls: the Anthropic stream must not carry that signature on the tool_use block.
    { agent: 'claude', model: 'claude-*', upstream: /^\/v1beta\/models\/claude-[\w.-]+:streamGenerateContent$/, title: 'on a native Gemini channel: Messages -> Gemini' },
    { agent: 'codex', model: 'gpt-5-codex', upstream: '/v1beta/models/gpt-5-codex:streamGenerateContent', title: 'on a native Gemini channel: Responses -> Gemini' },
    { agent: 'opencode', model: 'gpt-5', upstream: '/v1beta/models/gpt-5:streamGenerateContent', title: 'on a native Gemini channel: chat -> Gemini' },
    { agent: 'gemini', model: 'gemini-2.5-flash', upstream: '/v1/messages', title: 'on an Anthropic channel: Gemini -> Messages' },
  ]
  for (const c of cases) agentTest(() => mock, c)
})

/**
 * Both calls of a parallel turn went back to the upstream with their arguments intact and their
 * results, in order, each naming its own call (the mock refuses a malformed turn with the provider's 400, which the agent test sees too).
 */
function bothResultsPaired(requests: RecordedRequest[], assert: Assert) {
  const turns = requests.filter((r) => r.method === 'POST').map(upstreamTurns)
  const answered = turns.find((t) => t.results.length > 0)
  assert.exists(answered, 'no request carried the tools\' results')
  // The calls as the agent read them and sent them back: each with its own arguments, whole.
  assert.deepEqual(answered!.calls.map((c) => c.args), [{ location: 'Paris' }, { location: 'Tokyo' }])
  assert.lengthOf(answered!.results, 2)
  answered!.results.forEach((result, i) => {
    if (result.id || answered!.calls[i].id) assert.equal(result.id, answered!.calls[i].id)
  })
}

test.group('Coding agents through the gateway, two parallel tool calls a turn (run only when installed)', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    // Every tool-offering answer calls two tools at once; chat streams interleave the two calls' pieces.
    mock = await startMock({ text: 'hello from the mock ', calls: 2, interleave: true })
    await seedChannel({ name: 'claude', provider: 'anthropic', baseUrl: mock.url, models: ['gpt-5-codex'] })
    await seedChannel({ name: 'chat', provider: 'deepseek', baseUrl: mock.url, models: ['deepseek-*', 'gemini-*', 'claude-*'] })
    await seedChannel({ name: 'openai', provider: 'openai', baseUrl: mock.url, models: ['o4-*'] })
    await seedChannel({ name: 'google', provider: 'google', baseUrl: `${mock.origin}/v1beta`, models: ['gpt-5'] })
    return () => mock.stop()
  })

  const cases: AgentCase[] = [
    { agent: 'claude', model: 'claude-*', upstream: '/v1/chat/completions', title: 'two interleaved chat calls, Messages -> chat' },
    { agent: 'codex', model: 'o4-mini', upstream: '/v1/responses', title: 'two calls at once to an OpenAI channel' },
    { agent: 'codex', model: 'gpt-5-codex', upstream: '/v1/messages', title: 'two calls at once, Responses -> Messages' },
    { agent: 'codex', model: 'deepseek-chat', upstream: '/v1/chat/completions', title: 'two interleaved chat calls, Responses -> chat' },
    { agent: 'opencode', model: 'deepseek-chat', upstream: '/v1/chat/completions', title: 'two interleaved calls to an OpenAI-compatible channel' },
    { agent: 'opencode', model: 'gpt-5', upstream: '/v1beta/models/gpt-5:streamGenerateContent', title: 'two calls in one Gemini turn, chat -> Gemini' },
    { agent: 'gemini', model: 'gemini-2.5-flash', upstream: '/v1/chat/completions', title: 'two interleaved chat calls, Gemini -> chat' },
  ]
  for (const c of cases) agentTest(() => mock, { ...c, check: bothResultsPaired })
})

/**
 * The turn that sent the tool's result back carried the model's reasoning on the call's turn, as
 * DeepSeek requires: the text where the agent kept it, else the field, empty.
 */
function reasoningSentBack(expected: string) {
  return (requests: RecordedRequest[], assert: Assert) => {
    const answered = requests.map((r) => JSON.parse(r.body || '{}')).find((b) => (b.messages ?? []).some((m: any) => m.role === 'tool'))
    assert.exists(answered, "no request carried the tool's result")
    const turn = answered.messages.find((m: any) => m.role === 'assistant' && m.tool_calls?.length)
    assert.strictEqual(turn.reasoning_content, expected)
  }
}

test.group('Coding agents through the gateway on DeepSeek in thinking mode (run only when installed)', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    // DeepSeek thinks in every answer and refuses a tool turn sent back without its reasoning_content.
    mock = await startMock({ text: 'hello from the mock ', thinking: true })
    await seedChannel({ name: 'deepseek', provider: 'deepseek', baseUrl: mock.url, models: ['claude-*', 'gemini-*', 'deepseek-*'] })
    return () => mock.stop()
  })

  const cases: AgentCase[] = [
    { agent: 'claude', model: 'claude-*', upstream: '/v1/chat/completions', title: 'its thinking goes back with the tool turn, Messages -> chat', check: reasoningSentBack('Let me think.') },
    { agent: 'codex', model: 'deepseek-v4-pro', upstream: '/v1/chat/completions', title: 'its reasoning goes back with the tool turn, Responses -> chat', check: reasoningSentBack('Let me think.') },
    // Gemini CLI keeps no thought text in its history (Google's API wants none back): the field goes empty.
    { agent: 'gemini', model: 'gemini-2.5-flash', upstream: '/v1/chat/completions', title: 'the tool turn is answered though it kept no thoughts, Gemini -> chat', check: reasoningSentBack('') },
  ]
  for (const c of cases) agentTest(() => mock, c)
})

/**
 * `codex exec` on Codex's own OpenAI provider pointed at the gateway (`openai_base_url`), with an
 * auto-compaction limit so low that the turn compacts after its first answer: Codex's remote
 * compaction (v2: `compaction_trigger` through /v1/responses) reaches the gateway mid-turn.
 */
function codexCompacting(key: string, model: string): Promise<string> {
  const home = freshHome()
  writeFileSync(
    join(home, 'config.toml'),
    [
      `model = "${model}"`,
      `openai_base_url = "${baseUrl()}/v1"`,
      'model_auto_compact_token_limit = 1',
      'check_for_update_on_startup = false',
      '[analytics]',
      'enabled = false',
    ].join('\n')
  )
  return run('codex', ['exec', '--skip-git-repo-check', 'say hi'], { HOME: home, CODEX_HOME: home, OPENAI_API_KEY: key, CODEX_API_KEY: key }, home)
}

test.group('Codex compaction through the gateway (run only when installed)', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    // The tool call ends once the summary is in the conversation (else every turn compacts again at this limit).
    mock = await startMock({ text: 'hello from the mock ', noToolCallsAfter: SUMMARY_PREFIX.slice(0, 60) })
    await seedChannel({ name: 'claude', provider: 'anthropic', baseUrl: mock.url, models: ['gpt-5-codex'] })
    return () => mock.stop()
  })

  test('Codex CLI: a remote compaction (v2) on an Anthropic channel, emulated; the turn goes on from the summary', async ({ assert }) => {
    const user = await seedUser()
    const from = mock.requests.length
    const out = await codexCompacting(user.key, 'gpt-5-codex')
    assert.include(out, 'context compacted', out)
    assert.include(out, 'hello from the mock', out)
    const bodies = mock.requests.slice(from).map((r) => r.body)
    // The summary was asked for (the history, then the gateway's prompt), and the next call carried it.
    const asked = bodies.findIndex((b) => b.includes(JSON.stringify(SUMMARISATION_PROMPT).slice(1, 60)))
    assert.isAtLeast(asked, 0, 'no summarisation call reached the upstream')
    assert.isTrue(bodies.slice(asked + 1).some((b) => b.includes(SUMMARY_PREFIX.slice(0, 60))), 'the summary never came back')
    const rows = await usageRows(user.userId)
    assert.isAtLeast(rows.length, 3)
    for (const row of rows) assert.isTrue(row.endpoint === 'responses' && row.status === 200, `${row.endpoint} ${row.status}`)
  })
    .skip(!installed('codex'), 'codex (Codex CLI) is not installed')
    .timeout(180_000)
})
