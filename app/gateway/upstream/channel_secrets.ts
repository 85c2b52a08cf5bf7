import { parseVertexKey } from '#gateway/providers/vertex/vertex_settings'
import type { GatewayError } from '#exceptions/gateway_error'
import { baseOf } from '#gateway/providers/provider_adapter'
import { bedrockKeySecrets } from '#gateway/providers/bedrock/bedrock_settings'
import type { ChannelInfo } from '#gateway/types'

/**
 * What of a channel an upstream's own words must not carry to the client:
 * the credentials the gateway sent it (its key, its extra headers' values)
 * and where it lives (its base URL, origin, host). An upstream or a proxy in
 * front of it may repeat them in an error message ("invalid request to
 * http://10.0.0.5:8000/v1 with Bearer sk-..."); a relayed 4xx carries the
 * upstream's message to the client as it is, and the request log keeps its
 * body for the user's portal. Operators resell access: the client learns
 * neither the operator's upstream account nor its address.
 */
interface ChannelSecrets {
  /** Longest first: a value that contains another is replaced whole */
  credentials: string[]
  addresses: string[]
}

/** Shorter extra-header values are not secrets (a version, a flag) and would mangle ordinary words. */
const SHORTEST_SECRET = 8

const CREDENTIAL = '[redacted]'
const ADDRESS = '[upstream]'

/** Worked out once per channel snapshot (the catalog builds a new one on every change). */
const secrets = new WeakMap<ChannelInfo, ChannelSecrets>()

function secretsOf(channel: ChannelInfo): ChannelSecrets {
  let found = secrets.get(channel)
  if (found) return found
  const credentials = Object.values(channel.extraHeaders).filter((value) => value.length >= SHORTEST_SECRET)
  if (channel.apiKey && channel.apiKey.length >= SHORTEST_SECRET) credentials.push(channel.apiKey)
  // A Bedrock key holds its access key id, secret and session token apart, or names the environment's (bedrock_settings.ts): each concealed.
  if (channel.provider === 'bedrock' && channel.apiKey) {
    for (const part of bedrockKeySecrets(channel.apiKey)) if (part.length >= SHORTEST_SECRET) credentials.push(part)
  }
  // A Vertex service account's JSON key: its private key and key id concealed on their own too.
  if (channel.provider === 'vertex' && channel.apiKey) {
    const auth = parseVertexKey(channel.apiKey)
    if (auth.kind === 'service_account') {
      credentials.push(auth.account.privateKey)
      if (auth.account.privateKeyId && auth.account.privateKeyId.length >= SHORTEST_SECRET) credentials.push(auth.account.privateKeyId)
    }
  }
  const addresses: string[] = []
  try {
    const url = new URL(channel.baseUrl)
    const { origin, basePath } = baseOf(channel)
    addresses.push(origin + basePath, origin, url.host, url.hostname)
  } catch {}
  const byLength = (a: string, b: string) => b.length - a.length
  found = { credentials: [...new Set(credentials)].sort(byLength), addresses: [...new Set(addresses.filter(Boolean))].sort(byLength) }
  secrets.set(channel, found)
  return found
}

/** A text with the channel's credentials and address replaced. */
export function withoutChannelSecrets(text: string, channel: ChannelInfo): string {
  const { credentials, addresses } = secretsOf(channel)
  for (const value of credentials) if (text.includes(value)) text = text.split(value).join(CREDENTIAL)
  for (const value of addresses) if (text.includes(value)) text = text.split(value).join(ADDRESS)
  return text
}

/**
 * An upstream's failure as the gateway passes it on (client message, attempt
 * record, channel's last error, logged body): without the channel's secrets.
 * Only failures pay for it; the logged body is rewritten only when it holds one.
 */
export function concealChannel<E extends GatewayError>(error: E, channel: ChannelInfo): E {
  error.message = withoutChannelSecrets(error.message, channel)
  const body = error.upstreamBody
  if (body !== undefined) {
    const { credentials, addresses } = secretsOf(channel)
    if (credentials.some((v) => body.includes(v)) || addresses.some((v) => body.includes(v))) {
      error.upstreamBody = Buffer.from(withoutChannelSecrets(body.toString('utf8'), channel))
    }
  }
  return error
}
