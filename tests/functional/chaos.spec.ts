import { test } from '@japa/runner'
import { spawn } from 'node:child_process'

/**
 * The short form of `npm run chaos`, so CI runs it: a few thousand mixed
 * requests with upstream faults and client aborts, the gateway SIGKILLed and
 * SIGTERMed once each and restarted, Postgres restarted once; then the
 * reconciliation (no row missing or doubled, ledger = balances, overdraw at
 * most one request, SIGKILL loss within its bound) must pass.
 */
test.group('Chaos run (short form)', () => {
  test('npm run chaos with 2,500 requests reconciles', async ({ assert }) => {
    const child = spawn(process.execPath, ['bin/chaos.js'], {
      env: { ...process.env, CHAOS_REQUESTS: '2500', CHAOS_CONCURRENCY: '24', CHAOS_TIMEOUT_SECONDS: '240' },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr = (stderr + d).slice(-20_000)))
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)))
    assert.equal(code, 0, `${stdout}\n${stderr}`)
    assert.include(stdout, '| Result | PASS |')
    assert.match(stdout, /\| gateway SIGKILL \|/)
    assert.match(stdout, /\| gateway SIGTERM \| exit code 0/)
    assert.match(stdout, /\| Postgres restart \|/)
    assert.match(stdout, /\| Rows missing \| 0 \|/)
    assert.match(stdout, /\| Rows or charges doubled \| 0 \|/)
  }).timeout(300_000)
})
