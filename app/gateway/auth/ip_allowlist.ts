import { BlockList, isIP } from 'node:net'

/**
 * A key's IP allowlist (new-api's token IP restriction, LiteLLM's
 * `allowed_ips`): IPv4/IPv6 addresses and CIDR ranges. Parsed and
 * normalised once when an operator or user saves it, compiled into a
 * `node:net` BlockList once per cached key, and checked with one
 * `BlockList.check` per request of a key that has one.
 */

/** Entries a key may list: enough for a fleet's egress ranges, small enough to read on the key's page. */
export const MAX_ALLOWED_IPS = 32

export type IpListProblem = { kind: 'invalid'; entry: string } | { kind: 'too_many'; max: number }

/**
 * "203.0.113.7", "10.0.0.0/8", "2001:DB8::/32", "::ffff:10.0.0.1" -> the
 * form stored and shown: IPv6 compressed and lower case, an IPv4-mapped IPv6
 * address (or range of them, prefix 96 or more) as the IPv4 it stands for.
 * Null when it is not an address or a range with a prefix within 0-32 / 0-128.
 */
export function normaliseIpEntry(raw: string): string | null {
  const entry = raw.trim()
  const slash = entry.indexOf('/')
  const address = slash < 0 ? entry : entry.slice(0, slash)
  const family = isIP(address)
  // A zone index (fe80::1%eth0) names an interface of one machine: meaningless for a client's address.
  if (family === 0 || address.includes('%')) return null
  let prefix: number | null = null
  if (slash >= 0) {
    const text = entry.slice(slash + 1)
    if (!/^\d{1,3}$/.test(text)) return null
    prefix = Number(text)
    if (prefix > (family === 4 ? 32 : 128)) return null
  }
  if (family === 4) return prefix === null ? address : `${address}/${prefix}`
  const compressed = new URL(`http://[${address}]/`).hostname.slice(1, -1)
  const mapped = ipv4OfMapped(compressed)
  if (mapped && (prefix === null || prefix >= 96)) return prefix === null ? mapped : `${mapped}/${prefix - 96}`
  return prefix === null ? compressed : `${compressed}/${prefix}`
}

/** "::ffff:a00:1" (the compressed form of ::ffff:10.0.0.1) -> "10.0.0.1"; null for any other address. */
function ipv4OfMapped(compressed: string): string | null {
  const match = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(compressed)
  if (!match) return null
  const high = Number.parseInt(match[1], 16)
  const low = Number.parseInt(match[2], 16)
  return `${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`
}

/** "10.0.0.1, 192.168.0.0/16\n::1" -> its entries (a form's or a flag's text). */
export function splitIpText(text: string): string[] {
  return text.split(/[\s,]+/).filter(Boolean)
}

/**
 * What a form, a flag or an API body gives (a comma, space or newline
 * separated text, or an array) -> the normalised entries, duplicates
 * dropped; or the first problem. Empty = no restriction.
 */
export function parseIpList(input: string | readonly unknown[] | null | undefined): { entries: string[] } | { problem: IpListProblem } {
  if (input === null || input === undefined) return { entries: [] }
  const raw = typeof input === 'string' ? splitIpText(input) : input
  const entries: string[] = []
  for (const item of raw) {
    if (typeof item !== 'string') return { problem: { kind: 'invalid', entry: String(item) } }
    if (!item.trim()) continue
    const entry = normaliseIpEntry(item)
    if (entry === null) return { problem: { kind: 'invalid', entry: item.trim().slice(0, 100) } }
    if (!entries.includes(entry)) entries.push(entry)
    if (entries.length > MAX_ALLOWED_IPS) return { problem: { kind: 'too_many', max: MAX_ALLOWED_IPS } }
  }
  return { entries }
}

/**
 * The stored list -> a BlockList of the addresses and ranges, or null when
 * the key has none (any address). An entry that does not parse (written
 * around the forms, with psql) is left out: it matches nothing, so a broken
 * list refuses rather than opens the key.
 */
export function compileIpAllowlist(entries: readonly unknown[] | null | undefined): BlockList | null {
  if (!entries || entries.length === 0) return null
  const list = new BlockList()
  for (const item of entries) {
    const entry = typeof item === 'string' ? normaliseIpEntry(item) : null
    if (entry === null) continue
    const slash = entry.indexOf('/')
    const address = slash < 0 ? entry : entry.slice(0, slash)
    const family = isIP(address) === 4 ? 'ipv4' : 'ipv6'
    if (slash < 0) list.addAddress(address, family)
    else list.addSubnet(address, Number(entry.slice(slash + 1)), family)
  }
  return list
}

/**
 * Whether a client address is on the list. A socket's IPv6 form of an IPv4
 * client (`::ffff:127.0.0.1`, on a server listening on `::`) matches the
 * IPv4 entries: BlockList compares IPv4-mapped addresses as IPv4.
 */
export function ipAllowed(list: BlockList, address: string | undefined): boolean {
  if (!address) return false
  return list.check(address, address.includes(':') ? 'ipv6' : 'ipv4')
}
