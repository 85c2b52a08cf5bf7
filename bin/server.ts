/*
| HTTP server entrypoint. Before the app boots, the runtime bootstrap makes
| sure there is a data directory, an APP_KEY and a database (embedded
| PostgreSQL when DATABASE_URL is not set).
*/
import 'reflect-metadata'
import { createServer } from 'node:http'
import { prepareRuntime, StartupError } from '../start/runtime.js'

await prepareRuntime({ database: true })

const { Ignitor, prettyPrintError } = await import('@adonisjs/core')

const APP_ROOT = new URL('../', import.meta.url)
const IMPORTER = (filePath: string) => {
  if (filePath.startsWith('./') || filePath.startsWith('../')) {
    return import(new URL(filePath, APP_ROOT).href)
  }
  return import(filePath)
}

/**
 * Connections the kernel queues for accept() (capped by net.core.somaxconn).
 * Node's default, 511, overflows when thousands of agents connect at once
 * (5,000 streams opened over 2 s): the kernel then drops the handshake's last
 * step and the client retries it a second or more later, which is most of
 * what such a burst waits for its first byte (docs/benchmarks.md, eleventh pass).
 */
const LISTEN_BACKLOG = Number(process.env.LISTEN_BACKLOG) || 4096

/** Adonis listens with (port, host): this server adds the backlog. */
function withListenBacklog(server: ReturnType<typeof createServer>) {
  const listen = server.listen.bind(server) as (options: object) => typeof server
  server.listen = ((port: number, host?: string) => listen({ port, host, backlog: LISTEN_BACKLOG })) as typeof server.listen
  return server
}

/** The API lane (app/gateway/http/api_lane.ts): loaded once the app has booted, used to create the server. */
let withApiLane: typeof import('#gateway/http/api_lane').withApiLane | undefined
/** Requests Node's HTTP parser refuses, answered in the API's error formats (app/gateway/http/client_errors.ts) */
let answerClientErrors: typeof import('#gateway/http/client_errors').answerClientErrors | undefined
/** `Expect: 100-continue` answered once the body is wanted (app/gateway/http/expect_continue.ts) */
let deferExpectContinue: typeof import('#gateway/http/expect_continue').deferExpectContinue | undefined
/** Connections that never send a byte are closed (app/gateway/http/silent_sockets.ts) */
let closeSilentSockets: typeof import('#gateway/http/silent_sockets').closeSilentSockets | undefined
/** CORS for browser clients of the API (app/gateway/http/cors.ts) */
let withCors: typeof import('#gateway/http/cors').withCors | undefined
/** OpenAI's Realtime API: WebSocket upgrades of /v1/realtime (app/gateway/realtime/realtime_upgrade.ts) */
let withRealtime: typeof import('#gateway/realtime/realtime_upgrade').withRealtime | undefined
/** The graceful stop (SIGTERM's), also run when the start fails once the server listens */
let stopGateway: (() => Promise<void>) | undefined

new Ignitor(APP_ROOT, { importer: IMPORTER })
  .tap((app) => {
    app.booting(async () => {
      await import('#start/env')
    })
    app.booted(async () => {
      ;({ withApiLane } = await import('#gateway/http/api_lane'))
      ;({ answerClientErrors } = await import('#gateway/http/client_errors'))
      ;({ withCors } = await import('#gateway/http/cors'))
      ;({ deferExpectContinue } = await import('#gateway/http/expect_continue'))
      ;({ closeSilentSockets } = await import('#gateway/http/silent_sockets'))
      ;({ withRealtime } = await import('#gateway/realtime/realtime_upgrade'))
    })
    // Graceful stop: refuse new API requests at once, give in-flight ones
    // SHUTDOWN_GRACE_MS to finish, then the provider flushes metering.
    const stop = async () => {
      if (app.container.hasBinding('gateway')) {
        const gateway = await app.container.make('gateway')
        const graceMs = Number(process.env.SHUTDOWN_GRACE_MS) || 30_000
        gateway.service.startDraining(graceMs)
        // The moment new requests start being refused: operators (and the shutdown test) wait on this line.
        const logger = await app.container.make('logger')
        logger.info(`shutdown: refusing new requests, ${gateway.service.inFlight} in flight, grace ${graceMs} ms`)
        // Signalled during boot: let the boot finish (bounded) before closing what it uses.
        await Promise.race([gateway.booting.catch(() => {}), new Promise((r) => setTimeout(r, 15_000).unref())])
      }
      await app.terminate()
      // Everything is flushed and closed: a socket or timer left behind by a
      // library must not keep a stopped gateway alive (it would never exit).
      setTimeout(() => {
        process.stderr.write('gateway: shutdown complete but handles remained open; exiting\n')
        process.exit(process.exitCode ?? 0)
      }, 5000).unref()
    }
    app.listen('SIGTERM', stop)
    app.listen('SIGINT', stop)
    stopGateway = stop
  })
  .httpServer()
  .start((adonis) =>
    withRealtime!(answerClientErrors!(closeSilentSockets!(deferExpectContinue!(withListenBacklog(createServer(withCors!(withApiLane!(adonis))))))))
  )
  .catch(async (error) => {
    process.exitCode = 1
    if ((error as NodeJS.ErrnoException)?.code === 'EADDRINUSE') {
      // The usual first-start mistake, said in one line instead of a stack.
      const where = `${process.env.HOST}:${process.env.PORT}`
      process.stderr.write(`gateway: cannot listen on ${where}: the port is in use (another gateway, or another program). Set PORT (and HOST) to a free one.\n`)
      return
    }
    if (error instanceof StartupError) {
      process.stderr.write(`gateway: ${error.message}\n`)
      return
    }
    prettyPrintError(error)
    // A failure once the server listens (a provider's ready hook: the first
    // start's bootstrap, the gateway's start) left it up and never ready, so a
    // supervisor (systemd, a container's restart policy) never restarted it.
    // Stop as on SIGTERM (the metering flushed, the embedded Postgres
    // released) and exit 1.
    process.stderr.write('gateway: the start failed (above); stopping\n')
    await stopGateway?.().catch(() => {})
  })
