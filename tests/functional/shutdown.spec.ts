import { test } from '@japa/runner'
import { spawn } from 'node:child_process'
import { createServer, type AddressInfo } from 'node:net'
import { WebSocket } from 'ws'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { resetDatabase, seedChannel, seedPrice, seedUser, startMock, usageRows, balanceAndLedger } from '#tests/helpers'

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo
      server.close(() => resolve(port))
    })
  })
}

/**
 * Starts the production server (`bin/start.js`) as a child process on the
 * test database, so SIGTERM can be sent to it alone.
 */
async function startServer(port: number) {
  const child = spawn(process.execPath, ['bin/start.js'], {
    // LOG_LEVEL info: the test waits on the line the server logs when it starts refusing requests.
    // A grace far past the streams' ~2 s: a loaded machine slows them, and the grace would cut them.
    env: { ...process.env, NODE_ENV: 'production', PORT: String(port), LOG_LEVEL: 'info', SHUTDOWN_GRACE_MS: '15000' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stdout.on('data', (d) => (output += d))
  child.stderr.on('data', (d) => (output += d))
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  // Up to 60 s: run on its own after a source change, bin/start.js compiles first (~12 s).
  for (let i = 0; i < 1200; i++) {
    if (child.exitCode !== null) break
    try {
      const r = await fetch(`http://127.0.0.1:${port}/api/status`)
      if (r.ok) return { child, exited, output: () => output }
    } catch {}
    await new Promise((r) => setTimeout(r, 50))
  }
  child.kill('SIGKILL')
  throw new Error(`server did not start:\n${output}`)
}

/** Resolves with the first output line containing `text` (bounded: the test's timeout). */
async function outputLine(output: () => string, text: string, exited: Promise<unknown>): Promise<string> {
  let done = false
  exited.then(() => (done = true))
  for (;;) {
    const line = output().split('\n').find((l) => l.includes(text))
    if (line !== undefined) return line
    if (done) throw new Error(`the server exited without logging "${text}":\n${output()}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

test.group('Graceful shutdown', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'mock', baseUrl: mock.url, models: ['*'] })
    await seedPrice('slow-*', '1', '1')
    return () => mock.stop()
  })

  test('SIGTERM: in-flight streams finish, new requests are refused, every request is metered', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const port = await freePort()
    const server = await startServer(port)
    const call = (body: unknown) =>
      fetch(`http://127.0.0.1:${port}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'authorization': `Bearer ${user.key}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      })
    // Three streams of ~2 s each are running when SIGTERM arrives: their answers' heads came back
    // (admitted, the upstream streaming) before the signal is sent, not after a guessed delay.
    const streams = await Promise.all(
      [1, 2, 3].map(() =>
        call({ model: 'slow-1', stream: true, messages: [{ role: 'user', content: 'hi' }], mock: { chunks: 40, chunk_delay_ms: 50 } })
      )
    )
    const texts = Promise.all(streams.map((r) => r.text()))
    server.child.kill('SIGTERM')
    // A request sent once the server has taken the signal in (its log line says so), however long
    // a loaded machine took to schedule it, is refused; the three streams were still running then.
    const draining = await outputLine(server.output, 'shutdown: refusing new requests', server.exited)
    assert.include(draining, '3 in flight')
    const late = await call({ model: 'slow-1', messages: [{ role: 'user', content: 'hi' }] }).then(
      (r) => r.status,
      () => 'refused'
    )
    assert.oneOf(late, ['refused', 503])

    for (const [i, text] of (await texts).entries()) {
      assert.equal(streams[i].status, 200)
      assert.include(text, 'tok39 ')
      assert.include(text, 'data: [DONE]')
    }
    assert.equal(await server.exited, 0, server.output())
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows.filter((r) => r.status === 200), 3)
    const money = await balanceAndLedger(user.userId)
    assert.equal(money.balance, money.ledger)
  }).timeout(90_000)

  test('SIGTERM: a realtime session ends at once (1001), its running response cancelled upstream and metered', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const port = await freePort()
    const server = await startServer(port)
    const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/realtime?model=slow-realtime`, { headers: { authorization: `Bearer ${user.key}` } })
    ws.on('error', () => {})
    const types: string[] = []
    const running = new Promise<void>((resolve) =>
      ws.on('message', (data) => {
        const type = JSON.parse(data.toString()).type
        types.push(type)
        if (type === 'response.output_audio.delta') resolve()
      })
    )
    const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)))
    await new Promise((resolve) => ws.once('open', resolve))
    // A response that would never end on its own: only the gateway's response.cancel ends it.
    ws.send(JSON.stringify({ type: 'response.create', mock: { hang: true, usage: { total_tokens: 3, input_tokens: 2, output_tokens: 1 } } }))
    await running
    const started = Date.now()
    server.child.kill('SIGTERM')
    assert.equal(await closed, 1001)
    assert.equal(types.at(-1), 'response.done')
    assert.equal(await server.exited, 0, server.output())
    // Not held for the grace (15 s): the session ended when the shutdown began.
    assert.isBelow(Date.now() - started, 10_000)
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 1)
    assert.deepInclude(rows[0], { endpoint: 'realtime', error_code: 'response_cancelled', prompt_tokens: 2, completion_tokens: 1 })
    const money = await balanceAndLedger(user.userId)
    assert.equal(money.balance, money.ledger)
    assert.equal(money.balance, '0.999997000000')
  }).timeout(90_000)
})
