/**
 * A `vertex` channel's settings, from the fields every channel has (no column
 * of their own, so encryption, `secrets:reencrypt` and "never shown back" are
 * the channel key's):
 *
 * - the key: a service account's JSON key (the gateway signs a JWT with its
 *   `private_key` and trades it at its `token_uri` for an access token:
 *   google_token.ts), or, for Vertex AI express mode, an API key (sent as
 *   `x-goog-api-key`) or an OAuth access token (`ya29.`..., sent as Bearer);
 *   or `adc`: the gateway's own Google credentials, found as Google's
 *   libraries find application default credentials (google_adc.ts);
 * - the base URL: `https://{location}-aiplatform.googleapis.com/v1`
 *   (`https://aiplatform.googleapis.com/v1` for `global`; a bare location is
 *   completed to it), to which `/projects/{project}/locations/{location}` is
 *   added for a service account (project: `?project=` or the key's
 *   `project_id`) and for `adc` (`?project=`, else the credentials'
 *   project, known once they are: ADC_PROJECT in the path until then); a
 *   base that already names `/projects/.../locations/...` is used as it is; another host (a proxy, the tests' mock) gives its
 *   location as `?location=`.
 */
export interface ServiceAccount {
  clientEmail: string
  privateKey: string
  privateKeyId: string | null
  projectId: string | null
  tokenUri: string
}

export type VertexAuth =
  | { kind: 'service_account'; account: ServiceAccount }
  | { kind: 'bearer'; token: string }
  | { kind: 'api_key'; key: string }
  /** A key that looks like a JSON key but is not a usable one: the message says why */
  | { kind: 'invalid'; problem: string }
  /** The gateway's application default credentials (google_adc.ts) */
  | { kind: 'adc' }

export const GOOGLE_TOKEN_URI = 'https://oauth2.googleapis.com/token'

/** The key that means "the gateway's own Google credentials" (application default credentials) */
export const ADC_KEY = 'adc'

/** Stands for the project in a path until the application default credentials name it (google_adc.ts) */
export const ADC_PROJECT = '\u0000adc-project\u0000'

export function parseVertexKey(key: string): VertexAuth {
  const trimmed = key.trim()
  if (trimmed === ADC_KEY) return { kind: 'adc' }
  if (!trimmed.startsWith('{')) {
    // Google's OAuth access tokens start `ya29.`; anything else is an express-mode API key.
    return trimmed.startsWith('ya29.') ? { kind: 'bearer', token: trimmed } : { kind: 'api_key', key: trimmed }
  }
  let json: Record<string, unknown>
  try {
    json = JSON.parse(trimmed)
  } catch {
    return { kind: 'invalid', problem: "the channel's key is not valid JSON (a Vertex key is a service account's JSON key, an API key or an access token)" }
  }
  const text = (name: string) => (typeof json[name] === 'string' && json[name] ? (json[name] as string) : null)
  const clientEmail = text('client_email')
  const privateKey = text('private_key')
  if (!clientEmail || !privateKey) {
    return { kind: 'invalid', problem: "the channel's JSON key has no client_email or private_key (a service account key is needed)" }
  }
  return {
    kind: 'service_account',
    account: {
      clientEmail,
      privateKey,
      privateKeyId: text('private_key_id'),
      projectId: text('project_id'),
      tokenUri: text('token_uri') ?? GOOGLE_TOKEN_URI,
    },
  }
}

/** A Vertex location: us-central1, europe-west4, us-east5, asia-northeast1, global */
export const VERTEX_LOCATION = /^(?:global|[a-z]+-[a-z]+\d{1,2})$/

const VERTEX_HOST = /^(?:([a-z]+-[a-z]+\d{1,2})-)?aiplatform\.googleapis\.com$/
const PATH_LOCATION = /\/projects\/[^/]+\/locations\/([^/]+)/

/** The location a Vertex base URL names (its host, its path, or `?location=`); null when none. */
export function vertexLocation(baseUrl: string): string | null {
  let url: URL
  try {
    url = new URL(baseUrl)
  } catch {
    return null
  }
  const fromPath = PATH_LOCATION.exec(url.pathname)?.[1]
  if (fromPath) return fromPath
  const host = VERTEX_HOST.exec(url.hostname)
  if (host) return host[1] ?? 'global'
  const fromQuery = url.searchParams.get('location')
  return fromQuery && VERTEX_LOCATION.test(fromQuery) ? fromQuery : null
}

/** The endpoint of a location (the `global` one has no location in its host). */
export function vertexBaseUrl(location: string): string {
  return location === 'global' ? 'https://aiplatform.googleapis.com/v1' : `https://${location}-aiplatform.googleapis.com/v1`
}

/**
 * The path prefix publisher models are under: the base's own when it names
 * a project and location, else `/projects/{project}/locations/{location}`
 * added when a project is known (`?project=`, a service account's
 * `project_id`; ADC_PROJECT for `adc`: its credentials' project); without
 * one (express mode's API key) `{base}/publishers/...` directly. Null: a
 * service account with no project.
 */
export function vertexModelsPrefix(baseUrl: string, basePath: string, auth: VertexAuth | null): string | null {
  if (PATH_LOCATION.test(basePath)) return basePath
  const url = new URL(baseUrl)
  const project =
    url.searchParams.get('project') || (auth?.kind === 'service_account' ? auth.account.projectId : auth?.kind === 'adc' ? ADC_PROJECT : null)
  if (!project) return auth?.kind === 'service_account' ? null : basePath
  const location = vertexLocation(baseUrl) ?? 'us-central1'
  return `${basePath}/projects/${project === ADC_PROJECT ? project : encodeURIComponent(project)}/locations/${encodeURIComponent(location)}`
}
