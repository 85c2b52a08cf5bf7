import type { IncomingMessage } from 'node:http'
import app from '@adonisjs/core/services/app'
import proxyAddr from 'proxy-addr'

type TrustFn = (address: string, hop: number) => boolean

let httpConfig: { trustProxy: TrustFn } | undefined

/**
 * The client's address, by the rule Adonis's `request.ip()` uses: the
 * socket's peer, or the nearest X-Forwarded-For hop not from a trusted proxy
 * (proxy-addr with config/app.ts `http.trustProxy`, i.e. TRUSTED_PROXIES).
 * Read from the server's own config object, so the API lane (a raw
 * IncomingMessage, no HttpContext) and the router always agree.
 */
export function clientAddress(req: IncomingMessage): string | undefined {
  // A socket already closed has no peer (proxy-addr would throw).
  if (!req.socket.remoteAddress) return undefined
  httpConfig ??= app.config.get<{ trustProxy: TrustFn }>('app.http')
  return proxyAddr(req, httpConfig.trustProxy)
}
