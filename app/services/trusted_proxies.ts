import proxyAddr from 'proxy-addr'

/**
 * Which peers' X-Forwarded-Proto/Host/For are believed (request.protocol(),
 * host(), ip(); the base URL /docs shows). TRUSTED_PROXIES: unset or "false"
 * = none, "true" or "*" = any, else a comma list for proxy-addr ("loopback",
 * "10.0.0.0/8", "192.168.1.5").
 */
export function trustedProxies(setting: string | undefined): (address: string, hop: number) => boolean {
  if (!setting || setting === 'false') return () => false
  if (setting === 'true' || setting === '*') return () => true
  return proxyAddr.compile(setting.split(',').map((entry) => entry.trim()))
}
