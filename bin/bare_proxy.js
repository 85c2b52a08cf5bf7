/*
|--------------------------------------------------------------------------
| The floor: a bare relay, for the benchmark only
|--------------------------------------------------------------------------
|
| `node bin/bare_proxy.js <port> <upstream origin>`. What Node itself costs to
| relay one call on this machine: a node:http server in front, an undici Pool
| behind (dispatch, one handler object, as the gateway's upstream calls), and
| nothing else: no key, no plan, no routing, no JSON, no metering. Every
| request's body goes to the same path on the upstream with the client's
| headers; the answer comes back with its status and content type, a
| non-stream body in one write, a stream chunk by chunk.
|
| The bench runs it beside the gateway and Portkey (`BENCH_BARE=0` skips it):
| gateway minus bare is what the gateway's own work costs, and bare against
| Portkey is the best ratio any Node relay reaches on these two cores.
| Listens on 127.0.0.1 only.
*/
import http from 'node:http'
import { Pool } from 'undici'

const port = Number(process.argv[2])
const upstream = process.argv[3]
// The slow-stream run (BENCH_SLOW_BARE=1) holds thousands of streams at once: one connection each.
const connections = Number(process.argv[4] ?? 1024)
if (!port || !upstream || !(connections > 0)) {
  console.error('usage: node bin/bare_proxy.js <port> <upstream origin> [connections]')
  process.exit(2)
}

const pool = new Pool(upstream, { connections, pipelining: 1, keepAliveTimeout: 60_000 })

/** One exchange: the undici dispatch handler, writing straight to the client's response */
class Relay {
  constructor(res) {
    this.res = res
    this.stream = false
    this.chunks = []
  }
  onRequestStart() {}
  onResponseStart(_controller, statusCode, headers) {
    const type = headers['content-type'] ?? 'application/json'
    this.stream = type.startsWith('text/event-stream')
    this.res.statusCode = statusCode
    this.res.setHeader('content-type', type)
    if (this.stream) this.res.setHeader('cache-control', 'no-cache')
  }
  onResponseData(_controller, chunk) {
    if (this.stream) this.res.write(chunk)
    else this.chunks.push(chunk)
  }
  onResponseEnd() {
    if (this.stream) this.res.end()
    else this.res.end(this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks))
  }
  onResponseError(_controller, error) {
    if (this.res.headersSent) this.res.destroy(error)
    else {
      this.res.statusCode = 502
      this.res.end(JSON.stringify({ error: { message: error.message, type: 'upstream_error', code: 'bad_gateway' } }))
    }
  }
}

const server = http.createServer((req, res) => {
  const parts = []
  req.on('data', (chunk) => parts.push(chunk))
  req.on('end', () => {
    pool.dispatch(
      {
        origin: upstream,
        path: req.url,
        method: req.method,
        headers: {
          'content-type': req.headers['content-type'] ?? 'application/json',
          'authorization': req.headers.authorization ?? '',
        },
        body: parts.length === 1 ? parts[0] : Buffer.concat(parts),
      },
      new Relay(res)
    )
  })
})
server.keepAliveTimeout = 60_000
// The gateway's listen backlog (bin/server.ts): thousands of streams opened at once are not refused.
server.listen(port, '127.0.0.1', 4096, () => console.log(`bare relay on 127.0.0.1:${port} -> ${upstream}`))

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    server.close()
    pool.close().finally(() => process.exit(0))
  })
}
