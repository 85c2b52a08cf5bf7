import { test } from '@japa/runner'
import { createServer, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { once } from 'node:events'
import { Pool } from 'undici'
import { UpstreamBody, type BodyTimers } from '#gateway/upstream/upstream_body'

/**
 * UpstreamBody is the gateway's undici dispatch handler and body reader
 * (app/gateway/upstream/upstream_body.ts). These tests run it against a real
 * HTTP server on loopback through an undici Pool, as the dispatcher does.
 */

class Timers implements BodyTimers {
  touches = 0
  disposed = 0
  exchange: UpstreamBody | null = null
  touch() {
    this.touches++
  }
  dispose() {
    this.disposed++
  }
  watch(exchange: UpstreamBody) {
    this.exchange = exchange
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

async function serve(handler: (res: ServerResponse) => void): Promise<{ server: Server; pool: Pool; closes: () => number }> {
  let closed = 0
  const server = createServer((req, res) => {
    req.resume()
    res.on('close', () => {
      if (!res.writableFinished) closed++
    })
    handler(res)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: 1 })
  return { server, pool, closes: () => closed }
}

async function shut(server: Server, pool: Pool) {
  await pool.destroy()
  server.closeAllConnections()
  server.close()
}

const GET = { method: 'GET', path: '/' } as const

test.group('UpstreamBody', () => {
  test('collect gathers a body that arrived before anyone read it, and releases the timers', async ({ assert }) => {
    const { server, pool } = await serve((res) => res.end('{"ok":true}'))
    const timers = new Timers()
    const body = await UpstreamBody.send(pool, GET, timers)
    assert.equal(body.statusCode, 200)
    await sleep(20) // the whole answer is in before the reader attaches
    assert.equal((await body.collect()).toString(), '{"ok":true}')
    assert.equal(timers.disposed, 1)
    assert.isAtLeast(timers.touches, 1)
    await shut(server, pool)
  })

  test('forEach waits while the reader is slow: the upstream is paused, nothing is lost', async ({ assert }) => {
    const chunk = 'x'.repeat(16 * 1024)
    const { server, pool } = await serve((res) => {
      res.writeHead(200, { 'content-type': 'text/plain' })
      for (let i = 0; i < 64; i++) res.write(chunk)
      res.end()
    })
    const body = await UpstreamBody.send(pool, GET, new Timers())
    let bytes = 0
    let inFlight = 0
    let maxInFlight = 0
    await body.forEach((piece) => {
      bytes += piece.length
      inFlight++
      maxInFlight = Math.max(maxInFlight, inFlight)
      // The client is not keeping up: the next chunk must wait for this promise.
      return sleep(2).then(() => {
        inFlight--
      })
    })
    assert.equal(bytes, 64 * chunk.length)
    assert.equal(maxInFlight, 1, 'a chunk was handed over while the previous wait was pending')
    await shut(server, pool)
  })

  test('the idle clock restarts when the reader stops waiting, before the upstream sends again', async ({ assert }) => {
    // The upstream sends one chunk and then nothing: it is waiting on the gateway.
    let finish: () => void = () => {}
    const { server, pool } = await serve((res) => {
      res.writeHead(200, { 'content-type': 'text/plain' })
      res.write('first')
      finish = () => res.end('last')
    })
    try {
      const timers = new Timers()
      const body = await UpstreamBody.send(pool, GET, timers)
      let release: () => void = () => {}
      let touchesWhileWaiting = -1
      let chunks = 0
      const read = body.forEach(() => {
        if (chunks++ > 0) return
        touchesWhileWaiting = timers.touches
        // The client is not reading: the body waits on this promise, the upstream held back.
        return new Promise<void>((resolve) => (release = resolve))
      })
      for (let i = 0; i < 100 && touchesWhileWaiting < 0; i++) await sleep(10)
      assert.isAtLeast(touchesWhileWaiting, 1)
      release()
      await sleep(20)
      // No byte came meanwhile: the touch is the gateway reading again, the upstream's idle time starting.
      assert.equal(timers.touches, touchesWhileWaiting + 1)
      finish()
      await read
      assert.equal(chunks, 2)
    } finally {
      await shut(server, pool)
    }
  })

  test('a reader that returns false ends the upstream request and resolves', async ({ assert }) => {
    const { server, pool, closes } = await serve((res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      res.write('data: 1\n\n')
      const timer = setInterval(() => res.write('data: more\n\n'), 10)
      res.on('close', () => clearInterval(timer))
    })
    const timers = new Timers()
    const body = await UpstreamBody.send(pool, GET, timers)
    let seen = 0
    await body.forEach(() => {
      seen++
      if (seen === 3) return false
    })
    assert.equal(seen, 3)
    assert.equal(timers.disposed, 1)
    for (let i = 0; i < 50 && closes() === 0; i++) await sleep(10)
    assert.equal(closes(), 1, 'the upstream saw its connection closed')
    await shut(server, pool)
  })

  test('an abort while reading rejects the read with the abort reason', async ({ assert }) => {
    const { server, pool } = await serve((res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      res.write('data: 1\n\n')
    })
    const timers = new Timers()
    const body = await UpstreamBody.send(pool, GET, timers)
    const reading = body.forEach(() => {
      setImmediate(() => timers.exchange!.abort(new Error('upstream idle timeout')))
    })
    await assert.rejects(() => reading, 'upstream idle timeout')
    await shut(server, pool)
  })

  test('an abort while the request waits for a connection rejects at once', async ({ assert }) => {
    const { server, pool } = await serve((res) => {
      res.writeHead(200)
      res.write('busy')
    })
    // The pool's one connection is held by a first answer that never ends.
    const first = await UpstreamBody.send(pool, GET, new Timers())
    const timers = new Timers()
    const second = UpstreamBody.send(pool, GET, timers)
    const started = Date.now()
    setTimeout(() => timers.exchange!.abort(new Error('upstream first byte timeout')), 30)
    await assert.rejects(() => second, 'upstream first byte timeout')
    assert.isBelow(Date.now() - started, 1000)
    first.abort(new Error('done'))
    await shut(server, pool)
  })

  test('async iteration hands chunks one by one and leaving the loop early ends the request', async ({ assert }) => {
    const { server, pool, closes } = await serve((res) => {
      res.writeHead(200)
      let n = 0
      const timer = setInterval(() => res.write(`chunk ${n++};`), 5)
      res.on('close', () => clearInterval(timer))
    })
    const body = await UpstreamBody.send(pool, GET, new Timers())
    const got: string[] = []
    for await (const chunk of body) {
      got.push(chunk.toString())
      if (got.length === 4) break
    }
    assert.lengthOf(got, 4)
    for (let i = 0; i < 50 && closes() === 0; i++) await sleep(10)
    assert.equal(closes(), 1)
    await shut(server, pool)
  })

  test('a network error before the head rejects the send', async ({ assert }) => {
    const { server, pool } = await serve((res) => res.socket?.destroy())
    await assert.rejects(() => UpstreamBody.send(pool, GET, new Timers()))
    await shut(server, pool)
  })
  test('held: waits for the first chunk without taking it; the reader still gets every byte', async ({ assert }) => {
    const { server, pool } = await serve((res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      res.write('data: 1\n\n')
      setTimeout(() => res.end('data: 2\n\n'), 50)
    })
    const body = await UpstreamBody.send(pool, GET, new Timers())
    const held = await body.held(0)
    assert.equal(Buffer.concat(held).toString(), 'data: 1\n\n')
    assert.isFalse(body.complete)
    assert.equal((await body.collect()).toString(), 'data: 1\n\ndata: 2\n\n')
    await shut(server, pool)
  })

  test('held: an empty body resolves with nothing, complete; a body cut before its first chunk rejects', async ({ assert }) => {
    let { server, pool } = await serve((res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      res.end()
    })
    let body = await UpstreamBody.send(pool, GET, new Timers())
    assert.lengthOf(await body.held(0), 0)
    assert.isTrue(body.complete)
    await shut(server, pool)
    ;({ server, pool } = await serve((res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      res.flushHeaders()
      setTimeout(() => res.socket?.destroy(), 20)
    }))
    body = await UpstreamBody.send(pool, GET, new Timers())
    await assert.rejects(() => body.held(0))
    await shut(server, pool)
  })
  test("an AnswerWire decoder's end(): what it kept until the body ended is handed on, read before or after the end; its error fails the read", async ({ assert }) => {
    /** Keeps every chunk and hands on their upper-cased whole at the end (as Bedrock's Converse answer is read) */
    const wholeUpper = (fail = false) => ({
      decoder: () => {
        const kept: Buffer[] = []
        return {
          decoder: {
            push: (chunk: Buffer) => (kept.push(chunk), null),
            end: () => {
              if (fail) throw new Error('not an answer')
              return Buffer.from(Buffer.concat(kept).toString().toUpperCase())
            },
          },
          contentType: 'application/json',
        }
      },
    })
    const { server, pool } = await serve((res) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '11' })
      res.write('hello ')
      setTimeout(() => res.end('world'), 20)
    })
    let body = await UpstreamBody.send(pool, GET, new Timers(), wholeUpper())
    assert.equal(body.headers['content-type'], 'application/json')
    assert.notProperty(body.headers, 'content-length')
    assert.equal((await body.collect()).toString(), 'HELLO WORLD')
    body = await UpstreamBody.send(pool, GET, new Timers(), wholeUpper())
    await sleep(60) // ended before the reader attaches
    assert.equal((await body.collect()).toString(), 'HELLO WORLD')
    body = await UpstreamBody.send(pool, GET, new Timers(), wholeUpper(true))
    await assert.rejects(() => body.collect(), /not an answer/)
    await shut(server, pool)
  })
})
