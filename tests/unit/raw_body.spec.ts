import { test } from '@japa/runner'
import http, { type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { GatewayError } from '#exceptions/gateway_error'
import { bodyBudget } from '#gateway/http/body_limits'
import { readRawBody } from '#gateway/http/raw_body'

/**
 * readRawBody takes a body that is already whole in the stream's buffer at
 * once (the usual small request) and reads the others by events. Both ways
 * must keep the same bounds: the size limit, the instance budget (given back
 * when the response ends) and a clean end of the request, so the keep-alive
 * connection serves the next one.
 */
type Handler = (req: IncomingMessage, res: ServerResponse) => void

async function withServer(handler: Handler, run: (port: number) => Promise<void>) {
  const server = http.createServer(handler)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  try {
    await run((server.address() as AddressInfo).port)
  } finally {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  }
}

/** Reads the body once the parser has all of it (the case taken from the buffer), or at once. */
function reader(limit: number, waitForWhole: boolean, seen: Array<{ complete: boolean }>): Handler {
  return (req, res) => {
    const read = () => {
      seen.push({ complete: req.complete })
      readRawBody(req, res, limit).then(
        (body) => res.end(JSON.stringify({ bytes: body.length, text: body.toString('utf8'), used: bodyBudget.used })),
        (error: GatewayError) => {
          res.statusCode = error.status
          res.end(JSON.stringify({ code: error.code }))
        }
      )
    }
    if (!waitForWhole) return read()
    const poll = () => (req.complete ? read() : setTimeout(poll, 2))
    poll()
  }
}

function send(port: number, agent: http.Agent, headers: Record<string, string>, write: (req: http.ClientRequest) => void) {
  return new Promise<{ status: number; body: any }>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/', method: 'POST', headers, agent }, (res) => {
      const parts: Buffer[] = []
      res.on('data', (part) => parts.push(part))
      res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(Buffer.concat(parts).toString('utf8')) }))
    })
    req.on('error', reject)
    write(req)
  })
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 20))

test.group('readRawBody', () => {
  test('a body already whole is taken at once, holds its bytes until the answer, and leaves the connection reusable', async ({ assert }) => {
    const seen: Array<{ complete: boolean }> = []
    const before = bodyBudget.used
    await withServer(reader(1024, true, seen), async (port) => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
      try {
        const body = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'héllo' }] })
        for (let i = 0; i < 3; i++) {
          const answer = await send(port, agent, { 'content-length': String(Buffer.byteLength(body)) }, (req) => req.end(body))
          assert.equal(answer.status, 200)
          assert.equal(answer.body.text, body)
          // Held while the response is being written.
          assert.equal(answer.body.used - before, Buffer.byteLength(body))
        }
        // Three calls on one keep-alive connection: each request ended cleanly.
        assert.lengthOf(Object.values(agent.sockets).flat(), 0)
        assert.lengthOf(Object.values(agent.freeSockets).flat(), 1)
      } finally {
        agent.destroy()
      }
    })
    await settle()
    assert.equal(bodyBudget.used, before)
    assert.isTrue(seen.every((s) => s.complete))
  })

  test('a whole chunked body over the limit is refused with 413; one within it takes its size from the budget', async ({ assert }) => {
    const seen: Array<{ complete: boolean }> = []
    const before = bodyBudget.used
    await withServer(reader(64, true, seen), async (port) => {
      const agent = new http.Agent({ keepAlive: false })
      const over = await send(port, agent, { 'transfer-encoding': 'chunked' }, (req) => req.end('x'.repeat(65)))
      assert.equal(over.status, 413)
      assert.equal(over.body.code, 'request_too_large')
      const within = await send(port, agent, { 'transfer-encoding': 'chunked' }, (req) => req.end('y'.repeat(64)))
      assert.equal(within.status, 200)
      assert.equal(within.body.bytes, 64)
      assert.equal(within.body.used - before, 64)
      agent.destroy()
    })
    await settle()
    assert.equal(bodyBudget.used, before)
    assert.isTrue(seen.every((s) => s.complete))
  })

  test('a whole chunked body beyond the instance budget gets 503 overloaded', async ({ assert }) => {
    const capacity = bodyBudget.capacity
    bodyBudget.capacity = bodyBudget.used + 32
    try {
      await withServer(reader(1024, true, []), async (port) => {
        const agent = new http.Agent({ keepAlive: false })
        const answer = await send(port, agent, { 'transfer-encoding': 'chunked' }, (req) => req.end('z'.repeat(33)))
        assert.equal(answer.status, 503)
        assert.equal(answer.body.code, 'overloaded')
        agent.destroy()
      })
    } finally {
      bodyBudget.capacity = capacity
    }
  })

  test('a body still arriving is read by events, in parts', async ({ assert }) => {
    const seen: Array<{ complete: boolean }> = []
    await withServer(reader(1024, false, seen), async (port) => {
      const agent = new http.Agent({ keepAlive: false })
      const answer = await send(port, agent, { 'content-length': '10' }, (req) => {
        req.write('01234')
        setTimeout(() => req.end('56789'), 30)
      })
      assert.equal(answer.status, 200)
      assert.equal(answer.body.text, '0123456789')
      agent.destroy()
    })
    assert.deepEqual(seen, [{ complete: false }])
  })

  test('a client gone before its body is read (during the key lookup): the budget it declared is given back', async ({ assert }) => {
    const before = bodyBudget.used
    let done!: (outcome: string) => void
    const outcome = new Promise<string>((resolve) => (done = resolve))
    await withServer(
      (req, res) => {
        // Read only once the response has closed, as a request whose key lookup outlived its client.
        res.on('close', () => {
          readRawBody(req, res, 1_000_000).then(
            () => done('read'),
            (error: GatewayError) => done(error.code)
          )
        })
      },
      async (port) => {
        const req = http.request({ host: '127.0.0.1', port, path: '/', method: 'POST', headers: { 'content-length': '5000' } })
        req.on('error', () => {})
        req.write('{"model":')
        await settle()
        req.destroy()
        assert.equal(await outcome, 'client_closed')
      }
    )
    await settle()
    assert.equal(bodyBudget.used, before)
  })
})
