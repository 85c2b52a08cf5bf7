import { parseIpList } from '#gateway/auth/ip_allowlist'
import { AdminInputError } from '#actions/admin_input_error'

/**
 * A key's IP allowlist as the actions store it: normalised entries, or null
 * (any address) for none. The validators already report a bad entry beside
 * its field; this is the same rule for a caller that skipped them.
 */
export function allowedIpsColumn(input: readonly string[] | null | undefined): string[] | null {
  const parsed = parseIpList(input ?? null)
  if ('problem' in parsed) {
    throw new AdminInputError(
      parsed.problem.kind === 'invalid'
        ? `"${parsed.problem.entry}" is not an IP address or CIDR range (such as 203.0.113.7, 10.0.0.0/8 or 2001:db8::/32)`
        : `Allowed IPs can have at most ${parsed.problem.max} entries`,
      'allowedIps'
    )
  }
  return parsed.entries.length ? parsed.entries : null
}
