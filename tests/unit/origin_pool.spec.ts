import { test } from '@japa/runner'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { once } from 'node:events'
import { OriginPool } from '#gateway/upstream/origin_pool'
import { UpstreamBody, type BodyTimers } from '#gateway/upstream/upstream_body'

/** OriginPool (app/gateway/upstream/origin_pool.ts) against a real HTTP server on loopback. */

const timers = (): BodyTimers & { watch(): void } => ({ touch() {}, dispose() {}, watch() {} })
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const GET = { method: 'GET', path: '/' } as const

async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void) {
  let connections = 0
  const server = createServer((req, res) => {
    req.resume()
    handler(req, res)
  })
  server.on('connection', () => connections++)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  return { server, origin: `http://127.0.0.1:${port}`, connections: () => connections }
}

/** A server that answers the head and a first chunk, and holds each answer open in `held`. */
async function serveHeld() {
  const held: ServerResponse[] = []
  const served = await serve((_req, res) => {
    res.writeHead(200)
    res.write('open')
    held.push(res)
  })
  return { ...served, held }
}

function stop(server: Server) {
  server.closeAllConnections()
  server.close()
}

async function waitFor(check: () => boolean, ms = 2000) {
  for (let waited = 0; !check() && waited < ms; waited += 10) await sleep(10)
}

test.group('OriginPool', () => {
  test('requests in flight at once each get a connection; later ones reuse the idle ones', async ({ assert }) => {
    const { server, origin, connections, held } = await serveHeld()
    const pool = new OriginPool(origin, { pipelining: 1, keepAliveTimeout: 30_000 })
    const bodies = await Promise.all(Array.from({ length: 50 }, () => UpstreamBody.send(pool, GET, timers())))
    assert.equal(pool.size, 50)
    assert.equal(connections(), 50)
    const reads = bodies.map((body) => body.collect())
    for (const res of held.splice(0)) res.end()
    await Promise.all(reads)
    await sleep(10) // a client says it is free (drain) just after its answer ends
    // All 50 are idle again: 20 more requests open no connection.
    const again = await Promise.all(Array.from({ length: 20 }, () => UpstreamBody.send(pool, GET, timers())))
    for (const res of held.splice(0)) res.end()
    await Promise.all(again.map((body) => body.collect()))
    assert.equal(connections(), 50)
    assert.equal(pool.size, 50)
    await pool.close()
    stop(server)
  })

  test('with a cap, a request waits for a free connection, and is counted as waiting', async ({ assert }) => {
    const { server, origin, connections, held } = await serveHeld()
    const pool = new OriginPool(origin, { pipelining: 1, connections: 2 })
    const first = await Promise.all([UpstreamBody.send(pool, GET, timers()), UpstreamBody.send(pool, GET, timers())])
    assert.isTrue(pool.saturated)
    let thirdStarted = false
    const third = UpstreamBody.send(pool, GET, timers()).then((body) => {
      thirdStarted = true
      return body
    })
    await sleep(50)
    assert.isFalse(thirdStarted)
    assert.equal(pool.queued, 1)
    const firstRead = first[0].collect()
    held.shift()!.end()
    await firstRead
    const body = await third
    assert.equal(pool.queued, 0)
    assert.equal(connections(), 2)
    for (const res of held.splice(0)) res.end()
    await Promise.all([first[1].collect(), body.collect()])
    await pool.close()
    stop(server)
  })

  test('failed connections do not pile up clients', async ({ assert }) => {
    const { server, origin } = await serve(() => {})
    stop(server) // nothing listens on that port any more
    await sleep(20)
    const pool = new OriginPool(origin, { pipelining: 1, connectTimeout: 1000 })
    for (let i = 0; i < 20; i++) await assert.rejects(() => UpstreamBody.send(pool, GET, timers()))
    assert.isAtMost(pool.size, 1)
    await pool.close()
  })

  test('connections that close are let go: after the keep-alive, or at once when the upstream says so', async ({ assert }) => {
    const { server, origin } = await serve((_req, res) => {
      res.end('done')
    })
    const pool = new OriginPool(origin, { pipelining: 1, keepAliveTimeout: 200, keepAliveMaxTimeout: 200, keepAliveTimeoutThreshold: 0 })
    const bodies = await Promise.all(Array.from({ length: 10 }, () => UpstreamBody.send(pool, GET, timers())))
    await Promise.all(bodies.map((body) => body.collect()))
    await sleep(10)
    assert.equal(pool.size, 10)
    // Idle past the keep-alive: undici closes each connection, the pool lets the client go.
    await waitFor(() => pool.size === 0)
    assert.equal(pool.size, 0)
    // An upstream keep-alive shorter than undici's safety margin: undici closes right after the
    // answer, before the client says it is free; such a client is let go then.
    server.keepAliveTimeout = 1000
    const other = new OriginPool(origin, { pipelining: 1 })
    const short = await Promise.all(Array.from({ length: 5 }, () => UpstreamBody.send(other, GET, timers())))
    await Promise.all(short.map((body) => body.collect()))
    await sleep(20)
    assert.equal(other.size, 0)
    await other.close()
    assert.equal(pool.size, 0)
    // And the pool still works afterwards.
    const body = await UpstreamBody.send(pool, GET, timers())
    assert.equal((await body.collect()).toString(), 'done')
    await pool.close()
    stop(server)
  })

  test('closing is graceful: the running request finishes, the waiting one runs, then the connections close', async ({ assert }) => {
    const { server, origin, held } = await serveHeld()
    const pool = new OriginPool(origin, { pipelining: 1, connections: 1 })
    try {
      const running = await UpstreamBody.send(pool, GET, timers())
      const runningRead = running.collect()
      const waiting = UpstreamBody.send(pool, GET, timers())
      await sleep(20)
      assert.equal(pool.queued, 1)
      let closed = false
      const closing = pool.close().then(() => (closed = true))
      // A request after close is refused (the pool left the map before it was closed: none should come).
      await assert.rejects(() => UpstreamBody.send(pool, GET, timers()), 'the upstream pool is closed')
      await sleep(20)
      assert.isFalse(closed)
      held.shift()!.end(' one')
      assert.equal((await runningRead).toString(), 'open one')
      const second = await waiting
      await waitFor(() => held.length === 1)
      held.shift()!.end(' two')
      assert.equal((await second.collect()).toString(), 'open two')
      await closing
      assert.equal(pool.size, 0)
    } finally {
      pool.destroy().catch(() => {})
      stop(server)
    }
  })

  test('destroying fails the requests still waiting for a connection', async ({ assert }) => {
    const { server, origin } = await serve((_req, res) => {
      res.writeHead(200)
      res.write('x')
    })
    const pool = new OriginPool(origin, { pipelining: 1, connections: 1 })
    await UpstreamBody.send(pool, GET, timers())
    const waiting = UpstreamBody.send(pool, GET, timers())
    await sleep(20)
    const closing = pool.destroy()
    await assert.rejects(() => waiting, 'the upstream pool was destroyed')
    await closing
    stop(server)
  })
})
