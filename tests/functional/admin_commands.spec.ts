import { test } from '@japa/runner'
import ace from '@adonisjs/core/services/ace'
import db from '@adonisjs/lucid/services/db'
import UserCreate from '#commands/user_create'
import PlanCreate from '#commands/plan_create'
import ChannelCreate from '#commands/channel_create'
import PriceSet from '#commands/price_set'
import BalanceTopup from '#commands/balance_topup'
import KeyCreate from '#commands/key_create'
import KeyRevoke from '#commands/key_revoke'
import { hashApiKey } from '#gateway/auth/api_key_token'
import { baseUrl, post, refreshCaches, resetDatabase, startMock } from '#tests/helpers'

async function run(command: any, args: string[]) {
  const instance = await ace.create(command, args)
  ace.ui.switchMode('raw')
  await instance.exec()
  return instance
}

test.group('Admin commands (node ace ...)', (group) => {
  group.setup(async () => {
    await resetDatabase()
  })

  test('a full set-up from the command line: plan, user, channel, price, top-up, key', async ({ assert }) => {
    const mock = await startMock()
    ;(await run(PlanCreate, ['--name', 'pro', '--monthly-input-tokens', '100000', '--models', 'mock-*,gpt-*'])).assertSucceeded()
    ;(await run(UserCreate, ['--email', 'ann@example.com', '--password', 'secret-pass', '--plan', 'pro'])).assertSucceeded()
    ;(await run(ChannelCreate, ['--name', 'local', '--provider', 'custom', '--base-url', mock.url, '--api-key', 'k', '--models', 'mock-*', '--priority', '2', '--first-byte-timeout-ms', '5000', '--idle-timeout-ms', '2000'])).assertSucceeded()
    ;(await run(PriceSet, ['--model', 'mock-*', '--input', '1.5', '--output', '3'])).assertSucceeded()
    ;(await run(BalanceTopup, ['--user', 'ann@example.com', '--amount', '2.50', '--note', 'welcome'])).assertSucceeded()

    const keyCommand = await run(KeyCreate, ['--user', 'ann@example.com', '--name', 'laptop'])
    keyCommand.assertSucceeded()
    const key = (await db.from('api_keys').first())!
    // The database holds only the hash; prefix + last four are for display.
    assert.lengthOf(key.key_hash, 64)
    assert.match(key.prefix, /^sk-gw-.{4}$/)

    const user = (await db.from('users').where('email', 'ann@example.com').first())!
    assert.equal(user.balance, '2.500000000000')
    const channel = (await db.from('channels').where('name', 'local').first())!
    assert.notInclude(channel.api_key_encrypted, 'k"')
    assert.equal(channel.priority, 2)
    assert.equal(channel.first_byte_timeout_ms, 5000)
    assert.equal(channel.idle_timeout_ms, 2000)
    await mock.stop()
  })

  test('key:create prints the key alone on its last line; key:revoke invalidates it', async ({ assert }) => {
    const mock = await startMock()
    await run(UserCreate, ['--email', 'kim@example.com'])
    await run(ChannelCreate, ['--name', 'm2', '--provider', 'custom', '--base-url', mock.url, '--models', 'any-*'])
    const lines: string[] = []
    const original = console.log
    console.log = (...args: any[]) => lines.push(args.join(' '))
    try {
      await run(KeyCreate, ['--user', 'kim@example.com'])
    } finally {
      console.log = original
    }
    const key = lines[lines.length - 1]
    assert.match(key, /^sk-gw-[A-Za-z0-9_-]{32}$/)
    const stored = await db.from('api_keys').where('key_hash', hashApiKey(key)).first()
    assert.exists(stored)
    await refreshCaches()
    const ok = await post('/v1/chat/completions', { model: 'any-1', messages: [{ role: 'user', content: 'x' }] }, { authorization: `Bearer ${key}` })
    assert.equal(ok.status, 200)

    ;(await run(KeyRevoke, ['--key', stored.prefix])).assertSucceeded()
    await refreshCaches()
    const revoked = await post('/v1/chat/completions', { model: 'any-1', messages: [{ role: 'user', content: 'x' }] }, { authorization: `Bearer ${key}` })
    assert.equal(revoked.status, 401)
    await mock.stop()
  })

  test('a change made by another process reaches the caches through NOTIFY', async ({ assert }) => {
    const mock = await startMock()
    await run(UserCreate, ['--email', 'lee@example.com'])
    await run(ChannelCreate, ['--name', 'm3', '--provider', 'custom', '--base-url', mock.url, '--models', 'n-*'])
    await refreshCaches()
    const { createApiKey } = await import('#actions/issue_api_key')
    const { key, apiKey } = await createApiKey({ userRef: 'lee@example.com' })
    const call = () => post('/v1/chat/completions', { model: 'n-1', messages: [{ role: 'user', content: 'x' }] }, { authorization: `Bearer ${key}` })
    assert.equal((await call()).status, 200)
    // Plain SQL, as psql or another instance would do it: no cache call here.
    await db.from('api_keys').where('id', apiKey.id).update({ revoked_at: new Date() })
    let status = 200
    for (let i = 0; i < 100 && status === 200; i++) {
      await new Promise((r) => setTimeout(r, 20))
      status = (await call()).status
    }
    assert.equal(status, 401)
    await mock.stop()
  })

  test('bad input fails with a clear message and exit code 1', async ({ assert }) => {
    const badEmail = await run(UserCreate, ['--email', 'not-an-email'])
    badEmail.assertFailed()
    badEmail.assertLog('[ red(error) ] --email: Enter a valid e-mail address.', 'stderr')

    const badProvider = await run(ChannelCreate, ['--name', 'x', '--provider', 'nope', '--base-url', 'http://127.0.0.1:1/v1', '--models', 'a'])
    badProvider.assertFailed()
    const unknownUser = await run(BalanceTopup, ['--user', 'ghost@example.com', '--amount', '1'])
    unknownUser.assertFailed()
    unknownUser.assertLog('[ red(error) ] No user "ghost@example.com"', 'stderr')
    const badAmount = await run(BalanceTopup, ['--user', 'kim@example.com', '--amount', 'ten'])
    badAmount.assertFailed()
    assert.equal(badAmount.exitCode, 1)
  })
})

/**
 * The README's quick start reads the key with `| tail -n1`: the real command,
 * in its own process (boot, shutdown and all), must end stdout with the key.
 * (A shutdown log line once came last and broke that.)
 */
test.group('Admin commands in their own process', () => {
  test('key:create prints the new key alone on the last line of stdout, and it works', async ({ assert }) => {
    await resetDatabase()
    await run(UserCreate, ['--email', 'cli@example.com', '--password', 'secret-pass'])
    const { spawnSync } = await import('node:child_process')
    const result = spawnSync(process.execPath, ['ace.js', 'key:create', '--user', 'cli@example.com'], {
      cwd: process.cwd(),
      // At info level, as `npm run ace` runs for an operator.
      env: { ...process.env, LOG_LEVEL: 'info' },
      encoding: 'utf8',
      timeout: 60_000,
    })
    assert.equal(result.status, 0, result.stderr)
    const lastLine = result.stdout.trimEnd().split('\n').pop()!
    assert.match(lastLine, /^sk-gw-[\w-]{20,}$/)
    await refreshCaches()
    const response = await fetch(`${baseUrl()}/v1/balance`, { headers: { authorization: `Bearer ${lastLine}` } })
    assert.equal(response.status, 200)
  }).timeout(90_000)
})
