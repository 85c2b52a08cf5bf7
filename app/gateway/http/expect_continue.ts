import type { IncomingMessage, Server, ServerResponse } from 'node:http'

/**
 * `Expect: 100-continue`, answered when the body is wanted, not before.
 *
 * Node answers `100 Continue` to every such request the moment its headers
 * arrive: curl (for bodies over 1 MB), .NET and Java clients then upload
 * the whole body only to read a 401, a 429 or a 413 that the headers alone
 * had decided (a 50 MB image edit over a bad key, a body whose declared
 * length is over the endpoint's limit). With this, the server passes such a
 * request on without the 100, and whoever reads its body sends it first
 * (`continueIfAwaited`): the API's body reader after the key, the limits
 * and the declared length have been checked; the lane just before handing
 * anything else to Adonis (pages, webhooks: they read bodies their own way).
 * A refused request is answered at once, and the client never sends the
 * body it was about to.
 */
const awaiting = new WeakSet<IncomingMessage>()

export function deferExpectContinue(server: Server): Server {
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    awaiting.add(req)
    server.emit('request', req, res)
  })
  return server
}

/** Tells a client waiting on `Expect: 100-continue` to send its body (once; not after an answer began). */
export function continueIfAwaited(req: IncomingMessage, res: ServerResponse) {
  if (!awaiting.has(req)) return
  awaiting.delete(req)
  if (!res.headersSent && !res.writableEnded) res.writeContinue()
}
