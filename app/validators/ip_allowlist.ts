import vine from '@vinejs/vine'
import { parseIpList } from '#gateway/auth/ip_allowlist'

/**
 * A key's IP allowlist in a validator (panel and portal forms, ace flags,
 * the management API): each entry an IPv4/IPv6 address or CIDR range, at
 * most MAX_ALLOWED_IPS. The error is reported on the list's own field
 * ("Allowed IPs: "10.0.0.300" is not..."), so forms show it beside the field.
 * Messages: `ipAllowlist` / `ipAllowlistSize` in resources/lang/<locale>/validator.json.
 */
const ipAllowlistRule = vine.createRule(
  (value, _options, field) => {
    if (typeof value !== 'string' && !Array.isArray(value)) return
    const parsed = parseIpList(value)
    if (!('problem' in parsed)) return
    if (parsed.problem.kind === 'invalid') {
      field.report(
        '"{{ value }}" is not an IP address or CIDR range (such as 203.0.113.7, 10.0.0.0/8 or 2001:db8::/32)',
        'ipAllowlist',
        field,
        { value: parsed.problem.entry }
      )
    } else {
      field.report('{{ field }} can have at most {{ max }} entries', 'ipAllowlistSize', field, { max: parsed.problem.max })
    }
  },
  { name: 'ipAllowlist' }
)

/** A list given as an array (the panel and ace split their text; the management API's JSON). Empty = any address; the actions normalise it. */
export const ipAllowlistArray = () => vine.array(vine.string().maxLength(100)).use(ipAllowlistRule())

/** A list typed in one text field, comma, space or newline separated (the portal's form; splitIpText reads it). */
export const ipAllowlistText = () => vine.string().trim().maxLength(4000).use(ipAllowlistRule())
