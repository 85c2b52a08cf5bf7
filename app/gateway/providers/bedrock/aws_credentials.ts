import { homedir } from 'node:os'
import { join } from 'node:path'
import logger from '@adonisjs/core/services/logger'
import { CredentialsRefused } from '#gateway/providers/provider_adapter'
import { RefreshingCredential, type Expiring } from '#gateway/providers/refreshing_credential'
import { boundedFetch, isCredentialText, readCredentialFile, unreachableReason, type CredentialCall } from '#gateway/providers/credential_reads'
import type { AwsCredentials } from '#gateway/providers/bedrock/sigv4'

/**
 * The gateway's own AWS credentials (a Bedrock channel keyed `env`), found
 * as the AWS SDK for JavaScript v3 finds them (its Node default chain,
 * `defaultProvider`), first source that has some wins:
 *
 * 1. the environment: `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`
 *    (`AWS_SESSION_TOKEN`), skipped when `AWS_PROFILE` is set (the SDK
 *    then goes to the profile);
 * 2. the shared files: profile `AWS_PROFILE` (else `default`) of
 *    `AWS_SHARED_CREDENTIALS_FILE` (~/.aws/credentials) and
 *    `AWS_CONFIG_FILE` (~/.aws/config, `[profile name]`), static keys only:
 *    a profile that assumes a role, signs in with SSO, runs a
 *    `credential_process` or names a web identity file is refused with
 *    that said (the SDK's SSO and process steps are not taken);
 * 3. web identity (EKS IRSA): `AWS_WEB_IDENTITY_TOKEN_FILE` and
 *    `AWS_ROLE_ARN`, traded at STS (AssumeRoleWithWebIdentity; the token
 *    file read again at each refresh, as EKS rotates it);
 * 4. container credentials (ECS tasks, EKS Pod Identity):
 *    `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` (on 169.254.170.2) or
 *    `_FULL_URI`, with `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` /
 *    `AWS_CONTAINER_AUTHORIZATION_TOKEN`;
 * 5. otherwise the EC2 instance metadata service (IMDSv2: a session token
 *    PUT first, then the role's credentials), unless
 *    `AWS_EC2_METADATA_DISABLED`.
 *
 * Read at first use; every load walks the chain again from step 1, so a
 * rotated variable or a re-written file is read without a restart: temporary
 * credentials are loaded again 5 minutes before their Expiration, one fetch
 * in flight (RefreshingCredential), and static keys (no expiry) once AWS
 * refuses them (bedrock_adapter.ts heldKeysAnswer forgets them: a passing
 * 503, the next request loads).
 * Every call is bounded by its own timeout, and the request waiting on it
 * by its attempt's limits (UpstreamRequest.prepare). A source that refuses
 * (STS, a container endpoint's 4xx, a profile the gateway cannot read, no
 * source at all) is CredentialsRefused: the channel goes out of rotation
 * with the reason; one that cannot be reached (a timeout, a 5xx) fails that
 * attempt only.
 */
export type Env = Record<string, string | undefined>

export interface ChainCredentials {
  credentials: AwsCredentials
  /** Where they came from: environment, profile default, web identity, container, instance metadata */
  source: string
}

const REFRESH_MARGIN_MS = 5 * 60_000
/** Keys fetched from STS, a container endpoint or IMDS are held at most this long (heldUntil) */
const MAX_HELD_MS = 60 * 60_000
const STS_TIMEOUT_MS = 10_000
const CONTAINER_TIMEOUT_MS = 2_000
const IMDS_TIMEOUT_MS = 1_000
/** Bytes read of an answer at most (credentials are a few KB) */
const MAX_ANSWER = 64 * 1024
const ECS_HOST = 'http://169.254.170.2'
const IMDS_HOST = 'http://169.254.169.254'
const IMDS_HOST_IPV6 = 'http://[fd00:ec2::254]'

/** A source that answered but cannot be used as it is: why, in words for the channel's reason */
class Refused extends CredentialsRefused {
  constructor(source: string, reason: string) {
    super(`AWS credentials (${source}): ${reason}`)
  }
}

/** The chain's steps in the SDK's order; null: not configured here, the next one is tried. */
export async function resolveAwsCredentials(env: Env = process.env): Promise<Expiring<ChainCredentials>> {
  return (
    fromEnvironment(env) ??
    (await fromSharedFiles(env)) ??
    (await fromWebIdentity(env)) ??
    (await fromContainer(env)) ??
    (await fromInstanceMetadata(env))
  )
}

function fromEnvironment(env: Env): Expiring<ChainCredentials> | null {
  if (env.AWS_PROFILE) return null
  const accessKeyId = env.AWS_ACCESS_KEY_ID?.trim()
  const secretAccessKey = env.AWS_SECRET_ACCESS_KEY?.trim()
  if (!accessKeyId || !secretAccessKey) return null
  const sessionToken = env.AWS_SESSION_TOKEN?.trim()
  if (!usable(accessKeyId, secretAccessKey, sessionToken)) {
    throw new Refused('environment', 'AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or AWS_SESSION_TOKEN holds characters no key has (a space, a line break)')
  }
  const expiry = env.AWS_CREDENTIAL_EXPIRATION ? Date.parse(env.AWS_CREDENTIAL_EXPIRATION) : Number.NaN
  return {
    value: { credentials: { accessKeyId, secretAccessKey, ...(sessionToken ? { sessionToken } : {}) }, source: 'environment' },
    expiresAt: Number.isFinite(expiry) ? expiry : null,
  }
}

/** Keys of a profile that name a way to get credentials the gateway does not take */
const UNREAD = ['role_arn', 'source_profile', 'credential_source', 'credential_process', 'web_identity_token_file', 'sso_session', 'sso_start_url', 'sso_account_id', 'login_session']

async function fromSharedFiles(env: Env): Promise<Expiring<ChainCredentials> | null> {
  const home = env.HOME || homedir()
  const profile = env.AWS_PROFILE || 'default'
  const credentialsFile = env.AWS_SHARED_CREDENTIALS_FILE || join(home, '.aws', 'credentials')
  const configFile = env.AWS_CONFIG_FILE || join(home, '.aws', 'config')
  const source = `profile ${profile}`
  const fromCredentials = parseIni(await readOptional(credentialsFile, source))[profile]
  const config = parseIni(await readOptional(configFile, source))
  const fromConfig = config[profile === 'default' ? 'default' : `profile ${profile}`] ?? (profile === 'default' ? config['profile default'] : undefined)
  if (!fromCredentials && !fromConfig) return null
  // The credentials file's values win over the config file's, as in the SDK
  const settings = { ...fromConfig, ...fromCredentials }
  const unread = UNREAD.filter((name) => settings[name] !== undefined)
  if (unread.length) {
    throw new Refused(source, `the profile uses ${unread.join(', ')}, which the gateway does not read (only static keys: aws_access_key_id, aws_secret_access_key, aws_session_token); export the credentials or run on a role the gateway finds (web identity, container, instance)`)
  }
  const accessKeyId = settings.aws_access_key_id
  const secretAccessKey = settings.aws_secret_access_key
  if (!accessKeyId && !secretAccessKey) return null
  if (!accessKeyId || !secretAccessKey) throw new Refused(source, 'the profile has only one of aws_access_key_id and aws_secret_access_key')
  const sessionToken = settings.aws_session_token
  if (!usable(accessKeyId, secretAccessKey, sessionToken)) {
    throw new Refused(source, 'the profile\'s aws_access_key_id, aws_secret_access_key or aws_session_token holds characters no key has (a space, a quote?)')
  }
  return { value: { credentials: { accessKeyId, secretAccessKey, ...(sessionToken ? { sessionToken } : {}) }, source }, expiresAt: null }
}

async function readOptional(path: string, source: string): Promise<string> {
  try {
    return await readCredentialFile(path)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return ''
    throw new Refused(source, `cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`)
  }
}

/** An AWS INI file's sections: `[name]` -> key -> value (nested sub-properties skipped; comments `#` and `;`). */
export function parseIni(text: string): Record<string, Record<string, string>> {
  const sections: Record<string, Record<string, string>> = Object.create(null)
  let current: Record<string, string> | null = null
  for (const raw of text.split(/\r?\n/)) {
    if (/^\s/.test(raw) && current) continue
    const line = raw.trim()
    if (!line || line.startsWith('#') || line.startsWith(';')) continue
    const section = /^\[\s*([^\]]+?)\s*\]/.exec(line)
    if (section) {
      current = sections[section[1].replace(/\s+/g, ' ')] ??= Object.create(null)
      continue
    }
    const eq = line.indexOf('=')
    if (!current || eq < 1) continue
    current[line.slice(0, eq).trim().toLowerCase()] = line.slice(eq + 1).trim()
  }
  return sections
}

async function fromWebIdentity(env: Env): Promise<Expiring<ChainCredentials> | null> {
  const tokenFile = env.AWS_WEB_IDENTITY_TOKEN_FILE
  const roleArn = env.AWS_ROLE_ARN
  if (!tokenFile || !roleArn) return null
  const source = 'web identity'
  let token: string
  try {
    token = (await readCredentialFile(tokenFile)).trim()
  } catch (error) {
    throw new Refused(source, `cannot read AWS_WEB_IDENTITY_TOKEN_FILE ${tokenFile} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`)
  }
  if (!token) throw new Refused(source, `AWS_WEB_IDENTITY_TOKEN_FILE ${tokenFile} is empty`)
  const endpoint = stsEndpoint(env)
  const form = new URLSearchParams({
    Action: 'AssumeRoleWithWebIdentity',
    Version: '2011-06-15',
    RoleArn: roleArn,
    RoleSessionName: env.AWS_ROLE_SESSION_NAME || `ai-gateway-${Date.now()}`,
    WebIdentityToken: token,
  })
  const answer = await call(source, `STS at ${endpoint}`, `${endpoint}/`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8', 'accept': 'application/xml' },
    body: form.toString(),
    timeoutMs: STS_TIMEOUT_MS,
  })
  if (answer.status !== 200) {
    const code = xmlText(answer.text, 'Code')
    const message = xmlText(answer.text, 'Message')
    const detail = `${code ?? ''}${message ? `: ${message}` : ''}`.slice(0, 300)
    const said = `STS AssumeRoleWithWebIdentity answered HTTP ${answer.status}${detail ? ` (${detail})` : ''}`
    if (answer.status >= 500 || code === 'IDPCommunicationError' || code === 'Throttling') throw new Error(`AWS credentials (${source}): ${said}`)
    throw new Refused(source, said)
  }
  const accessKeyId = xmlText(answer.text, 'AccessKeyId')
  const secretAccessKey = xmlText(answer.text, 'SecretAccessKey')
  const sessionToken = xmlText(answer.text, 'SessionToken')
  const expiresAt = Date.parse(xmlText(answer.text, 'Expiration') ?? '')
  if (!accessKeyId || !secretAccessKey || !sessionToken || !Number.isFinite(expiresAt) || !usable(accessKeyId, secretAccessKey, sessionToken)) {
    throw new Error(`AWS credentials (${source}): STS answered no usable credentials`)
  }
  return { value: { credentials: { accessKeyId, secretAccessKey, sessionToken }, source }, expiresAt: heldUntil(expiresAt) }
}

/** STS's endpoint: AWS_ENDPOINT_URL_STS, AWS_ENDPOINT_URL, else the region's (the SDK's default), else the global one. */
export function stsEndpoint(env: Env): string {
  const override = env.AWS_ENDPOINT_URL_STS || env.AWS_ENDPOINT_URL
  if (override) return override.replace(/\/+$/, '')
  const region = env.AWS_REGION || env.AWS_DEFAULT_REGION
  if (!region) return 'https://sts.amazonaws.com'
  return `https://sts.${region}.amazonaws.com${region.startsWith('cn-') ? '.cn' : ''}`
}

/** Hosts a full container credentials URI may name over plain HTTP (the SDK's rule): loopback, ECS's and EKS's link-local addresses */
const PLAIN_HTTP_HOSTS = /^(?:127\.\d+\.\d+\.\d+|localhost|\[::1\]|169\.254\.170\.2|169\.254\.170\.23|\[fd00:ec2::23\])$/

/** The container credentials URL the environment names; null: none. */
export function containerCredentialsUrl(env: Env): string | null {
  const relative = env.AWS_CONTAINER_CREDENTIALS_RELATIVE_URI
  if (relative) return `${ECS_HOST}${relative.startsWith('/') ? '' : '/'}${relative}`
  return env.AWS_CONTAINER_CREDENTIALS_FULL_URI || null
}

async function fromContainer(env: Env): Promise<Expiring<ChainCredentials> | null> {
  const target = containerCredentialsUrl(env)
  if (!target) return null
  const source = 'container'
  let url: URL
  try {
    url = new URL(target)
  } catch {
    throw new Refused(source, `AWS_CONTAINER_CREDENTIALS_FULL_URI is not a URL`)
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && PLAIN_HTTP_HOSTS.test(url.hostname))) {
    throw new Refused(source, `${url.origin} is not a container credentials endpoint (over http only loopback, 169.254.170.2 or 169.254.170.23)`)
  }
  let authorization = env.AWS_CONTAINER_AUTHORIZATION_TOKEN
  if (env.AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE) {
    try {
      authorization = (await readCredentialFile(env.AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE)).trim()
    } catch (error) {
      throw new Refused(source, `cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`)
    }
  }
  // Sent as a header: a line break in it would make fetch fail with the token in its message.
  if (authorization && !isCredentialText(authorization)) throw new Refused(source, 'the container authorization token holds characters no token has')
  const answer = await call(source, `the container endpoint ${url.origin}`, url.toString(), {
    method: 'GET',
    headers: { accept: 'application/json', ...(authorization ? { authorization } : {}) },
    timeoutMs: CONTAINER_TIMEOUT_MS,
  })
  return credentialsJson(source, `the container endpoint`, answer)
}

async function fromInstanceMetadata(env: Env): Promise<Expiring<ChainCredentials>> {
  const disabled = env.AWS_EC2_METADATA_DISABLED
  if (disabled && disabled.toLowerCase() !== 'false') {
    throw new CredentialsRefused(
      `AWS credentials: none found (no AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, no profile ${env.AWS_PROFILE || 'default'} in the shared files, no AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN, no container credentials endpoint; the EC2 instance metadata service is disabled by AWS_EC2_METADATA_DISABLED)`
    )
  }
  const source = 'instance metadata'
  const host = (env.AWS_EC2_METADATA_SERVICE_ENDPOINT || (env.AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE?.toLowerCase() === 'ipv6' ? IMDS_HOST_IPV6 : IMDS_HOST)).replace(/\/+$/, '')
  const where = `the EC2 instance metadata service at ${host}`
  const timeoutMs = Number(env.AWS_METADATA_SERVICE_TIMEOUT) > 0 ? Number(env.AWS_METADATA_SERVICE_TIMEOUT) * 1000 : IMDS_TIMEOUT_MS
  // Not on EC2 (nothing answers) is the chain's end: said as such, a failure of this attempt, not a refusal.
  const nothingElse = 'none found (none in the environment or the shared files, no web identity, no container endpoint), and '
  const session = await call(source, where, `${host}/latest/api/token`, {
    method: 'PUT',
    headers: { 'x-aws-ec2-metadata-token-ttl-seconds': '21600' },
    timeoutMs,
    unreachable: nothingElse,
  })
  const sessionToken = session.text.trim()
  // A token fetch would refuse as a header (a line break) is not repeated in the failure: said as unusable.
  if (session.status !== 200 || !isCredentialText(sessionToken)) {
    throw new Error(`AWS credentials (${source}): ${where} answered HTTP ${session.status} to the IMDSv2 token request${session.status === 200 ? ', with no usable token' : ''}`)
  }
  const headers = { 'x-aws-ec2-metadata-token': sessionToken }
  const roles = await call(source, where, `${host}/latest/meta-data/iam/security-credentials/`, { method: 'GET', headers, timeoutMs })
  if (roles.status === 404) throw new Refused(source, 'the EC2 instance has no IAM role (instance profile) attached')
  const role = roles.text.split('\n')[0]?.trim()
  if (roles.status !== 200 || !role) throw new Error(`AWS credentials (${source}): ${where} answered HTTP ${roles.status} to the role request`)
  const answer = await call(source, where, `${host}/latest/meta-data/iam/security-credentials/${encodeURIComponent(role)}`, { method: 'GET', headers, timeoutMs })
  return credentialsJson(source, where, answer)
}

/** The container endpoint's and IMDS's answer: `{AccessKeyId, SecretAccessKey, Token, Expiration}` */
function credentialsJson(source: string, where: string, answer: { status: number; text: string }): Expiring<ChainCredentials> {
  let body: Record<string, unknown> = {}
  try {
    body = JSON.parse(answer.text)
  } catch {}
  if (answer.status !== 200) {
    const detail = [body.Code, body.Message ?? body.message].filter((part) => typeof part === 'string').join(': ').slice(0, 300)
    const said = `${where} answered HTTP ${answer.status}${detail ? ` (${detail})` : ''}`
    if (answer.status >= 500 || answer.status === 429) throw new Error(`AWS credentials (${source}): ${said}`)
    throw new Refused(source, said)
  }
  const text = (name: string) => (typeof body[name] === 'string' && body[name] ? (body[name] as string) : null)
  const accessKeyId = text('AccessKeyId')
  const secretAccessKey = text('SecretAccessKey')
  const sessionToken = text('Token')
  const expiresAt = text('Expiration') ? Date.parse(text('Expiration')!) : Number.NaN
  if (!accessKeyId || !secretAccessKey || (body.Code !== undefined && body.Code !== 'Success') || !usable(accessKeyId, secretAccessKey, sessionToken ?? undefined)) {
    throw new Error(`AWS credentials (${source}): ${where} answered no usable credentials`)
  }
  return {
    value: { credentials: { accessKeyId, secretAccessKey, ...(sessionToken ? { sessionToken } : {}) }, source },
    expiresAt: heldUntil(expiresAt),
  }
}

/**
 * How long keys an endpoint handed out are held: until their stated
 * Expiration, but no more than MAX_HELD_MS from now (a source stating 9999,
 * or none at all, is asked again within the hour; AWS's role keys last
 * 1 to 12 hours, and a fetch an hour costs one call).
 */
function heldUntil(expiresAt: number): number {
  const latest = Date.now() + MAX_HELD_MS
  return Number.isFinite(expiresAt) && expiresAt < latest ? expiresAt : latest
}

/** One bounded HTTP call (credential_reads.ts); a network failure or timeout is a plain Error (this attempt fails, the channel stays). */
async function call(source: string, where: string, url: string, init: CredentialCall & { unreachable?: string }) {
  try {
    return await boundedFetch(url, init, MAX_ANSWER)
  } catch (error) {
    throw new Error(`AWS credentials (${source}): ${init.unreachable ?? ''}${where} could not be reached (${unreachableReason(error, init.timeoutMs)})`)
  }
}

/** Every part a key that can be signed with (credential_reads.ts isCredentialText); an absent session token is fine */
function usable(accessKeyId: string, secretAccessKey: string, sessionToken: string | undefined): boolean {
  return isCredentialText(accessKeyId) && isCredentialText(secretAccessKey) && (!sessionToken || isCredentialText(sessionToken))
}

function xmlText(xml: string, tag: string): string | null {
  const found = new RegExp(`<${tag}>([^<]*)</${tag}>`).exec(xml)?.[1]
  if (found === undefined) return null
  return found.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&amp;/g, '&')
}

const chain = new RefreshingCredential<ChainCredentials>(() => resolveAwsCredentials(), REFRESH_MARGIN_MS, (error) =>
  logger.warn({ err: error.message }, 'AWS credentials could not be refreshed; the ones held serve until they expire')
)

/** The chain's credentials when fresh (the hot path: synchronous, the same object until refreshed); null: call awsCredentials(). */
export function cachedAwsCredentials(): AwsCredentials | null {
  return chain.fresh()?.credentials ?? null
}

/** Fresh credentials from the chain: the held ones, the resolution in flight, or a new one. */
export async function awsCredentials(): Promise<ChainCredentials> {
  return chain.get()
}

/** The secret parts of the credentials held (kept out of upstream words) */
export function heldAwsSecrets(): string[] {
  const held = chain.held()?.credentials
  return held ? [held.accessKeyId, held.secretAccessKey, ...(held.sessionToken ? [held.sessionToken] : [])] : []
}

/** Forgets the credentials held: the next use resolves the chain again (tests). */
export function forgetAwsCredentials() {
  chain.forget()
}
