import { lookup } from 'node:dns'
import { BlockList, isIP } from 'node:net'

/**
 * Addresses the gateway does not reach at a URL someone else chose (a
 * user's webhook; a redirect of an upstream's video download): loopback,
 * private, link-local (cloud metadata at 169.254.169.254), carrier-grade
 * NAT, multicast and reserved ranges.
 */
const BLOCKED = new BlockList()
for (const [net, prefix] of [
  ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12],
  ['192.0.0.0', 24], ['192.0.2.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['198.51.100.0', 24], ['203.0.113.0', 24],
  ['224.0.0.0', 4], ['240.0.0.0', 4],
] as const) BLOCKED.addSubnet(net, prefix, 'ipv4')
for (const [net, prefix] of [
  // ::/96 holds ::, ::1 and the deprecated IPv4-compatible ::a.b.c.d (URL writes [::127.0.0.1] as ::7f00:1)
  ['::', 96], ['fc00::', 7], ['fe80::', 10], ['ff00::', 8], ['64:ff9b::', 96], ['100::', 64],
  // Forms that carry or reach an IPv4 address (127.0.0.1 is ::ffff:0:7f00:1 translated, 2002:7f00:1:: in 6to4,
  // 64:ff9b:1::7f00:1 through a local NAT64), Teredo, the deprecated site-local fec0::/10, documentation
  ['::ffff:0:0:0', 96], ['2002::', 16], ['2001::', 32], ['64:ff9b:1::', 48], ['fec0::', 10], ['2001:db8::', 32],
] as const) BLOCKED.addSubnet(net, prefix, 'ipv6')

/** Is this address one of those? (IPv4-mapped IPv6 is checked as its IPv4; what is no address at all is) */
export function isBlockedAddress(address: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)
  if (mapped) return BLOCKED.check(mapped[1], 'ipv4')
  const family = isIP(address)
  if (family === 0) return true
  return BLOCKED.check(address, family === 4 ? 'ipv4' : 'ipv6')
}

/** A host that resolves to one of those addresses (the socket's lookup refused it: nothing was connected to) */
export class BlockedAddressError extends Error {}

/**
 * A socket's lookup (undici's connect.lookup) for a host someone else chose:
 * every address of the name resolved, the host refused when any is blocked,
 * the socket handed the address that was checked (a DNS answer cannot
 * change between the check and the connect). An IP literal is never looked
 * up: the caller checks it (isBlockedAddress).
 */
export const publicOnlyLookup = addressCheckingLookup(() => true, (message) => new BlockedAddressError(message))

/**
 * Such a lookup, refusing blocked addresses only while `refusing()` says so
 * (a user's webhook: USER_WEBHOOK_ALLOW_PRIVATE lets tests and a LAN through),
 * with the caller's error for a refused host.
 */
export function addressCheckingLookup(refusing: () => boolean, refused: (message: string) => Error) {
  return (hostname: string, options: any, callback: (...args: any[]) => void) => {
    lookup(hostname, { all: true, family: options?.family ?? 0 }, (error, addresses) => {
      if (error) return callback(error)
      if (addresses.length === 0) return callback(new Error(`${hostname} has no address`))
      if (refusing()) {
        const bad = addresses.find((a) => isBlockedAddress(a.address))
        if (bad) return callback(refused(`${hostname} resolves to a private or local address (${bad.address})`))
      }
      if (options?.all) return callback(null, addresses)
      callback(null, addresses[0].address, addresses[0].family)
    })
  }
}
