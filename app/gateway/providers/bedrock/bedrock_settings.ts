import type { AwsCredentials } from '#gateway/providers/bedrock/sigv4'
import { heldAwsSecrets } from '#gateway/providers/bedrock/aws_credentials'

/**
 * A `bedrock` channel's settings, from the fields every channel has (no
 * column of their own, so encryption, `secrets:reencrypt`, the APP_KEY check
 * and "never shown back" are the channel key's):
 *
 * - the key: `ACCESS_KEY_ID:SECRET_ACCESS_KEY` or
 *   `ACCESS_KEY_ID:SECRET_ACCESS_KEY:SESSION_TOKEN` (IAM credentials, signed
 *   with SigV4), or a Bedrock API key (no colon: AWS's `ABSK...` long-term
 *   and `bedrock-api-key-...` short-term keys), sent as `Authorization: Bearer`;
 *   or `env`: the gateway's own AWS credentials, a Bedrock API key in
 *   `AWS_BEARER_TOKEN_BEDROCK` (environmentAuth) or else the AWS SDK's
 *   default chain (aws_credentials.ts: environment, shared files, web
 *   identity, container, instance metadata);
 * - the region: from the base URL's AWS host
 *   (`https://bedrock-runtime.{region}.amazonaws.com`), or its `?region=`
 *   for any other base (a proxy, a VPC endpoint, the tests' mock).
 */
export type BedrockAuth =
  | { kind: 'sigv4'; credentials: AwsCredentials }
  | { kind: 'bearer'; token: string }
  /** The gateway's own credentials, from the default chain, signed with SigV4 */
  | { kind: 'chain' }

/** The key that means "the gateway's own AWS credentials, from its environment" */
export const ENVIRONMENT_KEY = 'env'

const CHAIN: BedrockAuth = { kind: 'chain' }

/**
 * A Bedrock API key from the environment, as AWS's SDKs read it
 * (`AWS_BEARER_TOKEN_BEDROCK`, which they prefer when set); null when it is
 * not set (then the default chain's IAM credentials sign).
 */
export function environmentAuth(env: Record<string, string | undefined>): BedrockAuth | null {
  const token = env.AWS_BEARER_TOKEN_BEDROCK?.trim()
  return token ? { kind: 'bearer', token } : null
}

/** The environment's Bedrock API key, read once, when this module loads at boot (a change needs a restart). */
const BOOT_BEARER = environmentAuth(process.env)

/** A channel key's credentials; a key of `env`: the environment's Bedrock API key, else the default chain's. */
export function parseBedrockKey(key: string, bearer: BedrockAuth | null = BOOT_BEARER): BedrockAuth {
  const trimmed = key.trim()
  if (trimmed === ENVIRONMENT_KEY) return bearer ?? CHAIN
  if (!trimmed.includes(':')) return { kind: 'bearer', token: trimmed }
  const [accessKeyId, secretAccessKey, ...rest] = trimmed.split(':').map((part) => part.trim())
  const sessionToken = rest.join(':')
  return { kind: 'sigv4', credentials: { accessKeyId, secretAccessKey, ...(sessionToken ? { sessionToken } : {}) } }
}

/** Whether a key has the form parseBedrockKey reads (an access key id and a secret when it has a colon). */
export function bedrockKeyProblem(key: string): string | null {
  if (key.trim() === ENVIRONMENT_KEY) return null
  const auth = parseBedrockKey(key)
  if (auth.kind === 'chain') return null
  if (auth.kind === 'bearer') return auth.token ? null : 'the key is empty'
  const { accessKeyId, secretAccessKey } = auth.credentials
  if (!accessKeyId || !secretAccessKey) {
    return 'a Bedrock key is ACCESS_KEY_ID:SECRET_ACCESS_KEY[:SESSION_TOKEN], or a Bedrock API key'
  }
  return null
}

/** The secret parts of a key (for `env`: the chain's credentials held now), each concealed in upstream words (channel_secrets.ts). */
export function bedrockKeySecrets(key: string): string[] {
  const auth = parseBedrockKey(key)
  if (auth.kind === 'chain') return heldAwsSecrets()
  if (auth.kind === 'bearer') return [auth.token]
  const { accessKeyId, secretAccessKey, sessionToken } = auth.credentials
  return [accessKeyId, secretAccessKey, ...(sessionToken ? [sessionToken] : [])]
}

/** An AWS region name: us-east-1, eu-central-2, us-gov-west-1, ap-southeast-4 */
export const AWS_REGION = /^[a-z]{2}(?:-[a-z]+)+-\d{1,2}$/

const AWS_RUNTIME_HOST = /^bedrock-runtime(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$/

/** The region a Bedrock base URL names; null when it names none. */
export function bedrockRegion(baseUrl: string): string | null {
  let url: URL
  try {
    url = new URL(baseUrl)
  } catch {
    return null
  }
  const fromHost = AWS_RUNTIME_HOST.exec(url.hostname)?.[1]
  if (fromHost) return fromHost
  const fromQuery = url.searchParams.get('region')
  return fromQuery && AWS_REGION.test(fromQuery) ? fromQuery : null
}

/** The runtime endpoint of a region */
export function bedrockBaseUrl(region: string): string {
  return `https://bedrock-runtime.${region}.amazonaws.com`
}

/**
 * The control plane beside a runtime base URL (Bedrock's model list is
 * there: `bedrock.{region}`); any other base keeps its own origin.
 */
export function bedrockControlOrigin(baseUrl: string): string {
  const url = new URL(baseUrl)
  const host = url.hostname.replace(/^bedrock-runtime(-fips)?\./, 'bedrock$1.')
  return `${url.protocol}//${host}${url.port ? `:${url.port}` : ''}`
}
