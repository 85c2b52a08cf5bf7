import { createHash } from 'node:crypto'
import { homedir } from 'node:os'
import { join } from 'node:path'
import logger from '@adonisjs/core/services/logger'
import { CredentialsRefused, type AnswerWire, type UpstreamRequest } from '#gateway/providers/provider_adapter'
import { RefreshingCredential, type Expiring } from '#gateway/providers/refreshing_credential'
import { boundedFetch, isCredentialText, readCredentialFile, unreachableReason, type CredentialCall } from '#gateway/providers/credential_reads'
import { accessToken, accountKey, cachedToken, forgetToken } from '#gateway/providers/vertex/google_token'
import { ADC_PROJECT, GOOGLE_TOKEN_URI, parseVertexKey } from '#gateway/providers/vertex/vertex_settings'

/**
 * The gateway's own Google credentials (a Vertex channel keyed `adc`), found
 * as Google's auth libraries find application default credentials, first
 * source that has some wins:
 *
 * 1. `GOOGLE_APPLICATION_CREDENTIALS`: a JSON file, a service account's key
 *    (the JWT grant of google_token.ts, its tokens cached there) or an
 *    `authorized_user` (`gcloud auth application-default login`: its
 *    refresh token traded at its `token_uri`, else Google's); a missing
 *    file is an error, not a fall-through (as in Google's libraries);
 * 2. gcloud's well-known file, `$CLOUDSDK_CONFIG` or
 *    `~/.config/gcloud` + `/application_default_credentials.json`, the same
 *    two types;
 * 3. the GCE / GKE metadata server (`GCE_METADATA_HOST`, else
 *    169.254.169.254; `Metadata-Flavor: Google` both ways): the attached
 *    service account's tokens and the project id.
 *
 * `external_account` (workload identity federation) and impersonation files
 * are refused with that said. The project: the channel's `?project=`, else
 * `GOOGLE_CLOUD_PROJECT` / `GCLOUD_PROJECT`, else the file's `project_id`
 * (`quota_project_id` of an authorized user, also sent as
 * `x-goog-user-project`), else the metadata server's.
 *
 * Tokens are kept until 5 minutes before they expire, one fetch in flight
 * (RefreshingCredential). Each time one is due (near its expiry, or
 * refused by Vertex while held), the chain is walked again first
 * (adcToken): a rotated GOOGLE_APPLICATION_CREDENTIALS or a re-written file
 * (a new key, `gcloud auth application-default login` again) serves from
 * then on, no restart; the same credentials found again keep their source
 * and its token state. A source that refuses is CredentialsRefused (the
 * channel out of rotation with the reason); one that cannot be reached
 * fails that attempt only.
 */
export type Env = Record<string, string | undefined>

interface AdcSource {
  /** Where the credentials are: for messages */
  where: string
  /** What was found (where, the file's text or the metadata server, the project variables): the same again keeps the source held */
  fingerprint: string
  projectId: string | null
  /** The project path segment, encoded once */
  projectPath: string | null
  /** An authorized user's quota project (x-goog-user-project) */
  quotaProject: string | null
  /** A fresh token, or null */
  fresh(): string | null
  token(): Promise<string>
  /** Drops the token held (refused before its expiry): the next request fetches one */
  forgetToken(): void
}

const REFRESH_MARGIN_MS = 5 * 60_000
const TOKEN_TIMEOUT_MS = 15_000
const METADATA_TIMEOUT_MS = 3_000
const MAX_ANSWER = 64 * 1024
/** An access token's longest life (Google's: an hour) */
const MAX_TOKEN_LIFE_S = 3600
const METADATA_HOST = '169.254.169.254'
/** OAuth's error codes that mean the grant is wrong, not the token server's state (as google_token.ts) */
const REFUSALS = new Set(['invalid_grant', 'invalid_client', 'unauthorized_client', 'access_denied', 'invalid_scope'])

class Refused extends CredentialsRefused {
  constructor(where: string, reason: string) {
    super(`Google application default credentials (${where}): ${reason}`)
  }
}

/** The first source of the chain that has credentials. */
export async function resolveAdc(env: Env = process.env): Promise<AdcSource> {
  const named = env.GOOGLE_APPLICATION_CREDENTIALS
  if (named) {
    const where = `GOOGLE_APPLICATION_CREDENTIALS ${named}`
    let text: string
    try {
      text = await readCredentialFile(named)
    } catch (error) {
      throw new Refused(where, `cannot read the file (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`)
    }
    return fileSource(text, where, env)
  }
  const wellKnown = join(env.CLOUDSDK_CONFIG || join(env.HOME || homedir(), '.config', 'gcloud'), 'application_default_credentials.json')
  let text: string | null = null
  try {
    text = await readCredentialFile(wellKnown)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new Refused(wellKnown, `cannot read the file (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`)
    }
  }
  if (text !== null) return fileSource(text, wellKnown, env)
  const none = `none found (GOOGLE_APPLICATION_CREDENTIALS is not set, no ${wellKnown})`
  if (env.METADATA_SERVER_DETECTION === 'none') throw new CredentialsRefused(`Google application default credentials: ${none}, and METADATA_SERVER_DETECTION=none`)
  return metadataSource(env, none)
}

function projectVariables(env: Env): string {
  return `${env.GOOGLE_CLOUD_PROJECT ?? ''}\n${env.GCLOUD_PROJECT ?? ''}`
}

function projectOf(env: Env, own: string | null): Pick<AdcSource, 'projectId' | 'projectPath'> {
  const projectId = env.GOOGLE_CLOUD_PROJECT || env.GCLOUD_PROJECT || own
  return { projectId: projectId || null, projectPath: projectId ? encodeURIComponent(projectId) : null }
}

function fileSource(text: string, where: string, env: Env): AdcSource {
  const fingerprint = `${where}\n${projectVariables(env)}\n${createHash('sha256').update(text).digest('base64url')}`
  let json: Record<string, unknown>
  try {
    json = JSON.parse(text)
  } catch {
    throw new Refused(where, 'the file is not JSON')
  }
  const field = (name: string) => (typeof json[name] === 'string' && json[name] ? (json[name] as string) : null)
  const type = field('type')
  if (type === 'service_account') {
    const auth = parseVertexKey(text)
    if (auth.kind !== 'service_account') throw new Refused(where, auth.kind === 'invalid' ? auth.problem : 'not a service account key')
    const key = accountKey(auth.account)
    return {
      where,
      fingerprint,
      ...projectOf(env, auth.account.projectId),
      quotaProject: null,
      fresh: () => cachedToken(key),
      token: () => accessToken(key, auth.account).catch((error: Error) => rethrow(where, error)),
      forgetToken: () => forgetToken(key),
    }
  }
  if (type === 'authorized_user') {
    const clientId = field('client_id')
    const clientSecret = field('client_secret')
    const refreshToken = field('refresh_token')
    if (!clientId || !clientSecret || !refreshToken) throw new Refused(where, 'an authorized_user file needs client_id, client_secret and refresh_token')
    const tokenUri = field('token_uri') ?? GOOGLE_TOKEN_URI
    const form = new URLSearchParams({ grant_type: 'refresh_token', client_id: clientId, client_secret: clientSecret, refresh_token: refreshToken }).toString()
    const tokens = cachedTokens(where, async () => {
      const answer = await call(`the token endpoint`, tokenUri, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: form,
        timeoutMs: TOKEN_TIMEOUT_MS,
      })
      return tokenAnswer(where, 'the token endpoint', answer)
    })
    const quotaProject = field('quota_project_id')
    // Sent as x-goog-user-project on every request: a value Node refuses in a header would fail them all.
    if (quotaProject !== null && !isCredentialText(quotaProject)) throw new Refused(where, 'quota_project_id holds characters no project id has')
    return { where, fingerprint, ...projectOf(env, quotaProject), quotaProject, fresh: () => tokens.fresh(), token: () => tokens.get(), forgetToken: () => tokens.forget() }
  }
  throw new Refused(
    where,
    `a credentials file of type ${type ?? '(none)'} is not read by the gateway (only service_account and authorized_user; external_account and impersonation are left out)`
  )
}

async function metadataSource(env: Env, none: string): Promise<AdcSource> {
  const host = env.GCE_METADATA_HOST || env.GCE_METADATA_IP || METADATA_HOST
  const origin = /^https?:\/\//.test(host) ? host.replace(/\/+$/, '') : `http://${host}`
  const where = `the metadata server at ${origin}`
  const headers = { 'metadata-flavor': 'Google' }
  const project = await call(where, `${origin}/computeMetadata/v1/project/project-id`, {
    method: 'GET',
    headers,
    timeoutMs: METADATA_TIMEOUT_MS,
    unreachable: `${none}, and `,
  })
  if (project.headers.get('metadata-flavor') !== 'Google') throw new Refused(where, `it answered without Metadata-Flavor: Google (HTTP ${project.status}): not a metadata server`)
  if (project.status >= 500) throw new Error(`Google application default credentials (${where}): it answered HTTP ${project.status}`)
  const tokenUrl = `${origin}/computeMetadata/v1/instance/service-accounts/default/token`
  const tokens = cachedTokens(where, async () => {
    const answer = await call(where, tokenUrl, { method: 'GET', headers, timeoutMs: METADATA_TIMEOUT_MS })
    if (answer.status === 404) throw new Refused(where, 'the instance has no service account attached')
    return tokenAnswer(where, where, answer)
  })
  const own = project.status === 200 ? project.text.trim() || null : null
  return {
    where,
    fingerprint: `${where}\n${projectVariables(env)}\n${own ?? ''}`,
    ...projectOf(env, own),
    quotaProject: null,
    fresh: () => tokens.fresh(),
    token: () => tokens.get(),
    forgetToken: () => tokens.forget(),
  }
}

function cachedTokens(where: string, load: () => Promise<Expiring<string>>) {
  return new RefreshingCredential<string>(load, REFRESH_MARGIN_MS, (error) =>
    logger.warn({ err: error.message, where }, 'Google access token could not be refreshed; the one held serves until it expires')
  )
}

/** `{access_token, expires_in}`, or the OAuth error said (a refusal: CredentialsRefused) */
function tokenAnswer(where: string, what: string, answer: { status: number; text: string }): Expiring<string> {
  let body: Record<string, unknown> = {}
  try {
    body = JSON.parse(answer.text)
  } catch {}
  if (answer.status !== 200) {
    const code = typeof body.error === 'string' ? body.error : ''
    const detail = `${code}${typeof body.error_description === 'string' ? `: ${body.error_description}` : ''}`.slice(0, 300)
    const said = `${what} answered HTTP ${answer.status}${detail ? ` (${detail})` : ''}`
    if (REFUSALS.has(code) || (answer.status >= 400 && answer.status < 500 && answer.status !== 429)) throw new Refused(where, said)
    throw new Error(`Google application default credentials (${where}): ${said}`)
  }
  const token = body.access_token
  // Google's access tokens live an hour at most: a longer stated life (1e12) is not believed, the token is fetched again within the hour.
  const expiresIn = Math.min(Number(body.expires_in ?? MAX_TOKEN_LIFE_S), MAX_TOKEN_LIFE_S)
  // A token with a line break (or a space) is no token: said without repeating it.
  if (typeof token !== 'string' || !isCredentialText(token)) throw new Error(`Google application default credentials (${where}): ${what} answered no access_token`)
  return { value: token, expiresAt: Date.now() + (Number.isFinite(expiresIn) && expiresIn > 0 ? expiresIn : MAX_TOKEN_LIFE_S) * 1000 }
}

/** A service account's failures (google_token.ts) said with where the key came from, of the same kind */
function rethrow(where: string, error: Error): never {
  const message = `Google application default credentials (${where}): ${error.message}`
  throw error instanceof CredentialsRefused ? new CredentialsRefused(message) : new Error(message)
}

/** One bounded HTTP call (credential_reads.ts); a network failure or timeout is a plain Error (this attempt fails, the channel stays). */
async function call(what: string, url: string, init: CredentialCall & { unreachable?: string }) {
  try {
    return await boundedFetch(url, init, MAX_ANSWER)
  } catch (error) {
    throw new Error(`Google application default credentials: ${init.unreachable ?? ''}${what} could not be reached (${unreachableReason(error, init.timeoutMs)})`)
  }
}

/** The source found last (null: none yet, or forgotten) */
let source: AdcSource | null = null
/** The chain walked again and a token fetched, shared by every request that waits meanwhile */
let finding: Promise<{ source: AdcSource; token: string }> | null = null

/**
 * A token: the held source's when fresh; else (due, refused, none yet) the
 * chain walked again first, once for every request waiting. Credentials
 * found as before keep the source held (its token, which serves while
 * valid when its refresh fails: RefreshingCredential); others replace it.
 * A walk that fails with a source held keeps that one (a file being
 * re-written, a metadata server slow once): said in the log.
 */
function adcToken(): Promise<{ source: AdcSource; token: string }> {
  if (finding) return finding
  finding = (async () => {
    let found: AdcSource
    try {
      found = await resolveAdc()
    } catch (error) {
      if (source === null) throw error
      logger.warn({ err: (error as Error).message, where: source.where }, 'Google application default credentials could not be found again; the source held serves')
      found = source
    }
    if (source === null || found.fingerprint !== source.fingerprint) source = found
    const held = source
    return { source: held, token: await held.token() }
  })().finally(() => {
    finding = null
  })
  return finding
}

/**
 * Sets a request's credentials from the application default credentials:
 * at once when a fresh token (and the project, when the path waits on it)
 * is held, else in a prepare() the dispatcher awaits inside the attempt.
 */
export function authoriseAdc(request: UpstreamRequest) {
  const token = source?.fresh()
  if (source && token && (source.projectPath || !request.path.includes(ADC_PROJECT))) {
    request.answer = HELD_TOKEN_ANSWER
    return apply(request, source, token)
  }
  request.prepare = async () => {
    const found = await adcToken()
    apply(request, found.source, found.token)
  }
}

/**
 * A 401 to a request sent with a held token: revoked, or past a life the
 * source overstated, before its expiry here, which says nothing yet of the
 * credentials. The token is forgotten and the answer is the channel's
 * passing failure (503), as vertex_adapter.ts does for a service account
 * key's; a 401 to a token just fetched takes the channel out of rotation.
 */
const HELD_TOKEN_ANSWER: AnswerWire = {
  status(statusCode) {
    if (statusCode !== 401) return statusCode
    // The next request walks the chain again (adcToken): credentials rotated since are found then.
    source?.forgetToken()
    return 503
  },
}

function apply(request: UpstreamRequest, source: AdcSource, token: string) {
  if (request.path.includes(ADC_PROJECT)) {
    if (!source.projectPath) {
      throw new Refused(source.where, "they name no project: give the channel's base URL ?project= (or set GOOGLE_CLOUD_PROJECT)")
    }
    request.path = request.path.replace(ADC_PROJECT, source.projectPath)
  }
  request.headers['authorization'] = `Bearer ${token}`
  if (source.quotaProject) request.headers['x-goog-user-project'] = source.quotaProject
}

/** Forgets the source found and its tokens: the next use looks again (tests). */
export function forgetAdc() {
  source = null
}
