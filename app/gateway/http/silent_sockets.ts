import type { Server } from 'node:http'
import type { Socket } from 'node:net'

/**
 * Connections that never send a byte are closed after a while.
 *
 * Node's header timeout starts at a request's first byte, and its
 * keep-alive timeout after an answer: a socket that connects and stays
 * silent is held forever (a file descriptor and ~6 KB each; 21,000 of them
 * from two processes were measured held). nginx closes such a connection
 * after client_header_timeout (60 s); so does this, with one timer per
 * connection (not per request) that looks at the bytes read when it fires.
 */
export const silentSockets = {
  /** Milliseconds a new connection may stay silent (FIRST_BYTE_TIMEOUT_MS; mutable for tests) */
  timeoutMs: Number(process.env.FIRST_BYTE_TIMEOUT_MS) > 0 ? Number(process.env.FIRST_BYTE_TIMEOUT_MS) : 60_000,
}

export function closeSilentSockets(server: Server): Server {
  server.on('connection', (socket: Socket) => {
    // No 'data' listener: the HTTP parser reads the socket's handle directly, and JS
    // 'data' events never come. The handle's byte count is kept either way.
    const timer = setTimeout(() => {
      if (socket.bytesRead === 0) socket.destroy()
    }, silentSockets.timeoutMs)
    timer.unref()
    socket.once('close', () => clearTimeout(timer))
  })
  return server
}
