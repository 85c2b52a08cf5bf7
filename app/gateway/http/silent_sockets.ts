import type { Server } from 'node:http'
import type { Socket } from 'node:net'

/**
 * Connections that never send a byte are closed after a while.
 *
 * Node's header timeout starts at a request's first byte, and its
 * keep-alive timeout after an answer: a socket that connects and stays
 * silent is held forever (a file descriptor and ~6 KB each; 21,000 of them
 * from two processes were measured held). nginx closes such a connection
 * after client_header_timeout (60 s); so does this.
 *
 * No timer per connection (a keep-alive connection would carry it for its
 * whole life): new connections wait in a set that one sweep looks through
 * now and then, dropping those that have spoken (the handle's byte count:
 * the HTTP parser reads the handle directly, so no 'data' event would tell)
 * and closing those silent for too long. The sweep runs only while the set
 * holds connections.
 */
export const silentSockets = {
  /** Milliseconds a new connection may stay silent (FIRST_BYTE_TIMEOUT_MS; mutable for tests) */
  timeoutMs: Number(process.env.FIRST_BYTE_TIMEOUT_MS) > 0 ? Number(process.env.FIRST_BYTE_TIMEOUT_MS) : 60_000,
}

/** How often the set is looked through: a quarter of the timeout, at most every 5 s */
function sweepEveryMs() {
  return Math.max(25, Math.min(5_000, Math.floor(silentSockets.timeoutMs / 4)))
}

export function closeSilentSockets(server: Server): Server {
  /** Connections not yet seen to speak, with when they connected */
  const fresh = new Map<Socket, number>()
  let sweep: NodeJS.Timeout | null = null
  let sweepMs = 0
  const schedule = () => {
    sweepMs = sweepEveryMs()
    sweep = setTimeout(look, sweepMs).unref()
  }

  const look = () => {
    const tooOld = Date.now() - silentSockets.timeoutMs
    for (const [socket, connectedAt] of fresh) {
      if (socket.bytesRead > 0) fresh.delete(socket)
      else if (connectedAt <= tooOld) {
        fresh.delete(socket)
        socket.destroy()
      }
    }
    sweep = null
    if (fresh.size > 0) schedule()
  }

  server.on('connection', (socket: Socket) => {
    fresh.set(socket, Date.now())
    socket.once('close', () => fresh.delete(socket))
    // A shorter timeout set since the sweep was scheduled (tests) is followed at once.
    if (sweep === null) schedule()
    else if (sweepMs > sweepEveryMs()) {
      clearTimeout(sweep)
      schedule()
    }
  })
  return server
}
