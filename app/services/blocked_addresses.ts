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
  ['192.0.0.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['224.0.0.0', 4], ['240.0.0.0', 4],
] as const) BLOCKED.addSubnet(net, prefix, 'ipv4')
for (const [net, prefix] of [
  ['::', 128], ['::1', 128], ['fc00::', 7], ['fe80::', 10], ['ff00::', 8], ['64:ff9b::', 96], ['100::', 64],
] as const) BLOCKED.addSubnet(net, prefix, 'ipv6')

/** Is this address one of those? (IPv4-mapped IPv6 is checked as its IPv4; what is no address at all is) */
export function isBlockedAddress(address: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)
  if (mapped) return BLOCKED.check(mapped[1], 'ipv4')
  const family = isIP(address)
  if (family === 0) return true
  return BLOCKED.check(address, family === 4 ? 'ipv4' : 'ipv6')
}
