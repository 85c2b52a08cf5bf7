import { createHash, createHmac } from 'node:crypto'

/**
 * AWS Signature Version 4 (https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html),
 * for the services the gateway calls (Bedrock's runtime and its model list):
 * canonical request, string to sign over the credential scope
 * `{date}/{region}/{service}/aws4_request`, HMAC-SHA256 key derivation.
 * Written here rather than taken from the AWS SDK: four hashes per request
 * do not need a 3 MB dependency tree on the hot path.
 */

export interface AwsCredentials {
  accessKeyId: string
  secretAccessKey: string
  /** STS temporary credentials' token: sent and signed as x-amz-security-token */
  sessionToken?: string
}

export interface SignInput {
  method: string
  /** The Host header's value (host[:port]) */
  host: string
  /**
   * The path as sent. Its segments are URI-encoded once more for the
   * canonical URI, as every service but S3 expects: a path sent as
   * `/model/a%3A0/invoke` is signed as `/model/a%253A0/invoke`.
   */
  path: string
  /** The query string as sent, without `?` ('' for none) */
  query?: string
  /** Headers to sign besides host (lower-case names) */
  headers: Record<string, string>
  /** Hex SHA-256 of the body */
  payloadHash: string
  region: string
  service: string
  /** YYYYMMDDTHHMMSSZ */
  amzDate: string
}

const EMPTY_HASH = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'

export function sha256Hex(data: string | Buffer): string {
  return data.length === 0 ? EMPTY_HASH : createHash('sha256').update(data).digest('hex')
}

/** RFC 3986 encoding as SigV4 wants it: everything but A-Z a-z 0-9 - _ . ~ percent-encoded, upper-case hex. */
export function uriEncode(value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
}

function canonicalUri(path: string): string {
  if (path === '' || path === '/') return '/'
  return path.split('/').map(uriEncode).join('/')
}

function canonicalQuery(query: string): string {
  if (!query) return ''
  const pairs = query
    .split('&')
    .filter(Boolean)
    .map((pair) => {
      const at = pair.indexOf('=')
      const name = decodeURIComponent(at < 0 ? pair : pair.slice(0, at))
      const value = at < 0 ? '' : decodeURIComponent(pair.slice(at + 1).replace(/\+/g, '%20'))
      return [uriEncode(name), uriEncode(value)] as const
    })
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0))
  return pairs.map(([name, value]) => `${name}=${value}`).join('&')
}

/** The canonical request and the signed header list (exported for the tests and the mock's own check). */
export function canonicalRequest(input: SignInput): { text: string; signedHeaders: string } {
  const all: [string, string][] = [['host', input.host]]
  for (const [name, value] of Object.entries(input.headers)) {
    const lower = name.toLowerCase()
    if (lower !== 'host') all.push([lower, value])
  }
  all.sort((a, b) => (a[0] < b[0] ? -1 : 1))
  const headerLines = all.map(([name, value]) => `${name}:${value.trim().replace(/\s+/g, ' ')}\n`).join('')
  const signedHeaders = all.map(([name]) => name).join(';')
  const text = [
    input.method.toUpperCase(),
    canonicalUri(input.path),
    canonicalQuery(input.query ?? ''),
    headerLines,
    signedHeaders,
    input.payloadHash,
  ].join('\n')
  return { text, signedHeaders }
}

/**
 * The signing key of a day, region and service, kept on the credentials
 * object: derived (four HMACs) once a day per channel, not per request.
 */
const signingKeys = new WeakMap<AwsCredentials, { scope: string; key: Buffer }>()

function signingKey(credentials: AwsCredentials, date: string, region: string, service: string): Buffer {
  const scope = `${date}/${region}/${service}`
  const kept = signingKeys.get(credentials)
  if (kept?.scope === scope) return kept.key
  const kDate = createHmac('sha256', `AWS4${credentials.secretAccessKey}`).update(date).digest()
  const kRegion = createHmac('sha256', kDate).update(region).digest()
  const kService = createHmac('sha256', kRegion).update(service).digest()
  const key = createHmac('sha256', kService).update('aws4_request').digest()
  signingKeys.set(credentials, { scope, key })
  return key
}

/** The Authorization header's value for a request. */
export function authorization(input: SignInput, credentials: AwsCredentials): string {
  const date = input.amzDate.slice(0, 8)
  const scope = `${date}/${input.region}/${input.service}/aws4_request`
  const { text, signedHeaders } = canonicalRequest(input)
  const toSign = `AWS4-HMAC-SHA256\n${input.amzDate}\n${scope}\n${sha256Hex(text)}`
  const signature = createHmac('sha256', signingKey(credentials, date, input.region, input.service))
    .update(toSign)
    .digest('hex')
  return `AWS4-HMAC-SHA256 Credential=${credentials.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`
}

/** YYYYMMDDTHHMMSSZ */
export function amzDate(now: Date = new Date()): string {
  return now.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '')
}

/**
 * Signs a request in place: adds x-amz-date, x-amz-security-token (when the
 * credentials carry one) and authorization to `headers`, every header in it
 * then signed. Headers added afterwards (a channel's extra headers) go
 * unsigned, which AWS accepts.
 */
export function signRequest(
  request: { method: string; host: string; path: string; query?: string; headers: Record<string, string>; body: string | Buffer },
  credentials: AwsCredentials,
  region: string,
  service: string,
  now: Date = new Date()
): void {
  const headers = request.headers
  headers['x-amz-date'] = amzDate(now)
  if (credentials.sessionToken) headers['x-amz-security-token'] = credentials.sessionToken
  headers['authorization'] = authorization(
    {
      method: request.method,
      host: request.host,
      path: request.path,
      query: request.query,
      headers,
      payloadHash: sha256Hex(request.body),
      region,
      service,
      amzDate: headers['x-amz-date'],
    },
    credentials
  )
}
