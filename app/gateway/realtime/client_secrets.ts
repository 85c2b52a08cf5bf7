import { randomBytes } from 'node:crypto'
import db from '@adonisjs/lucid/services/db'
import { GatewayError } from '#exceptions/gateway_error'
import { authorizeModel, modelAllowed } from '#gateway/access_policy'
import { hashApiKey } from '#gateway/auth/api_key_token'
import { resolvePrincipalByHash } from '#gateway/auth/key_resolver'
import type { Gateway } from '#gateway/gateway'
import type { ApiCall } from '#gateway/http/generation_request'
import { validateShape } from '#gateway/http/envelope'
import { assertStorableModel } from '#gateway/http/model_name'
import { parseJsonObject, readRawBody } from '#gateway/http/raw_body'
import { bodyLimitFor } from '#gateway/http/body_limits'
import { adapterFor } from '#gateway/providers/registry'
import type { Principal } from '#gateway/types'
import { betaSessionValidator, clientSecretValidator, transcriptionSessionValidator } from '#validators/realtime'
import { isTranscriptionConfig, requireTranscriptionModel, transcriptionCandidates } from '#gateway/realtime/transcription_sessions'

/**
 * The Realtime API's client secrets: what a browser voice app connects with.
 * Its server, holding a gateway key, calls `POST /v1/realtime/client_secrets`
 * (or the beta `POST /v1/realtime/sessions`) and hands the browser the
 * secret. The gateway issues its own (`ek_gw_` and 32 random bytes): a
 * provider's would open a session on the provider's account with no gateway
 * in between. It stands for the minting key (its user, plan, globs, cap,
 * limits, as they are when it is used) for one model and the session
 * configuration it was minted with, until it expires; it is accepted on
 * the Realtime API's WebSocket and WebRTC calls only, nowhere else (it is
 * no key: the HTTP lane's lookup does not know it).
 *
 * Stored hashed (SHA-256, as keys) in `realtime_client_secrets`: any
 * instance can take a secret another minted, and one minted survives a
 * restart. A row is read once per connect, never on the HTTP path; expired
 * ones are deleted by the hourly retention timer
 * (actions/prune_realtime_client_secrets.ts), not by the minting.
 */
export const CLIENT_SECRET_PREFIX = 'ek_gw_'
/** OpenAI's default lifetime of a secret (10 minutes), and the beta sessions' (one minute) */
const DEFAULT_SECONDS = 600
const BETA_SECONDS = 60

export function isClientSecret(rawKey: string | null): rawKey is string {
  return rawKey !== null && rawKey.startsWith(CLIENT_SECRET_PREFIX)
}

/** What a secret grants: the minting key's principal, the model and the session configuration. */
export interface SecretGrant {
  principal: Principal
  /** The minting key's SHA-256: the session re-reads the key by it (revoked, expired, its owner disabled) */
  keyHash: string
  model: string
  session: Record<string, any>
}

/**
 * `POST /v1/realtime/client_secrets`: `{expires_after: {anchor, seconds}, session: {type, model, ...}}`
 * answered as OpenAI does, `{value, expires_at, session}`; or the beta
 * `POST /v1/realtime/sessions` (the session's fields at the top, a one-minute
 * secret), answered as the session with its `client_secret: {value, expires_at}`.
 */
export async function mintClientSecret(gw: Gateway, call: ApiCall, dialect: 'ga' | 'beta' | 'transcription'): Promise<Record<string, any>> {
  const raw = await gw.service.receiveBody(readRawBody(call.req, call.res, bodyLimitFor('realtime')))
  const body = raw.length === 0 ? {} : parseJsonObject(raw)
  await validateShape(dialect === 'ga' ? clientSecretValidator : dialect === 'beta' ? betaSessionValidator : transcriptionSessionValidator, body)
  const session: Record<string, any> = dialect === 'ga' ? { ...(body.session ?? {}) } : { ...body }
  if (dialect === 'ga') session.type ??= 'realtime'
  // The beta POST /v1/realtime/transcription_sessions: the session's fields at the top, its secret's lifetime among them.
  if (dialect === 'transcription') {
    delete session.client_secret
    session.type = 'transcription'
  }
  const transcription = isTranscriptionConfig(session)
  if (session.type !== undefined && session.type !== 'realtime' && !transcription) {
    throw GatewayError.invalidRequest("session.type: 'realtime' or 'transcription'", 'unsupported_session_type', 'session.type')
  }
  const { principal } = call
  let model: string
  if (transcription) {
    // A transcription session is its transcription model's (transcription_sessions.ts): routed and checked as it.
    model = requireTranscriptionModel(session)
    transcriptionCandidates(gw, principal, model)
  } else {
    model = session.model
    if (typeof model !== 'string' || model === '') throw GatewayError.invalidRequest("The session's model is required (session.model)", 'missing_model', dialect === 'ga' ? 'session.model' : 'model')
    assertStorableModel(model)
    checkSessionModels(gw, principal, model, session)
  }
  const seconds =
    dialect === 'beta' ? BETA_SECONDS : dialect === 'transcription' ? (body.client_secret?.expires_at?.seconds ?? DEFAULT_SECONDS) : (body.expires_after?.seconds ?? DEFAULT_SECONDS)
  const value = CLIENT_SECRET_PREFIX + randomBytes(32).toString('base64url')
  const expiresAt = Math.floor(Date.now() / 1000) + seconds
  await db.table('realtime_client_secrets').insert({
    secret_hash: hashApiKey(value),
    api_key_id: principal.key.id,
    model,
    session: JSON.stringify(session),
    expires_at: new Date(expiresAt * 1000),
  })
  const id = `sess_gw_${randomBytes(12).toString('hex')}`
  const object = transcription ? 'realtime.transcription_session' : 'realtime.session'
  if (dialect === 'transcription') {
    const { type: _type, ...fields } = session
    return { id, object, ...fields, client_secret: { value, expires_at: expiresAt } }
  }
  if (dialect === 'beta') return { id, object, ...session, client_secret: { value, expires_at: expiresAt } }
  return { value, expires_at: expiresAt, session: { ...session, object, id, expires_at: 0 } }
}

/**
 * What a session of this model with this configuration is asked before
 * anything is given out: the model's access, the key's cap, monthly tokens
 * and the balance (authorizeModel), a channel serving it over the Realtime
 * API, and the input audio transcription's model (billed apart) allowed
 * like the session's own.
 */
export function checkSessionModels(gw: Gateway, principal: Principal, model: string, session: Record<string, any>) {
  authorizeModel(gw.catalog, principal, model)
  const served = gw.service
    .router(principal.plan)
    .route(model)
    .some((c) => adapterFor(c.channel.provider).realtime?.(c.channel, c.upstreamModel) != null)
  if (!served) throw GatewayError.invalidRequest(`No channel serving '${model}' offers the Realtime API (openai, azure and custom channels do)`, 'unsupported_endpoint')
  checkTranscriptionModels(principal, session)
}

/**
 * The input audio transcription's model a session configuration names (billed
 * apart, at its own prices): allowed by the plan's and the key's globs as
 * the session's own model, or 403 model_not_allowed naming where it was set.
 */
export function checkTranscriptionModels(principal: Principal, session: Record<string, any>) {
  const settings: Array<[unknown, string]> = [
    [session.audio?.input?.transcription, 'session.audio.input.transcription.model'],
    [session.input_audio_transcription, 'session.input_audio_transcription.model'],
  ]
  for (const [setting, param] of settings) {
    const transcription = (setting as any)?.model
    if (typeof transcription === 'string' && transcription !== '' && !modelAllowed(principal, transcription)) {
      const refusal = GatewayError.modelNotAllowed(transcription.slice(0, 200))
      refusal.param = param
      throw refusal
    }
  }
}

/**
 * The grant of a secret given as a key: unknown, expired or its key gone
 * are one answer (401 invalid_api_key, as a bad key's), the minting key
 * read as any key is (revoked, expired, blocked, its owner disabled: refused).
 */
export async function resolveClientSecret(gw: Gateway, value: string): Promise<SecretGrant> {
  if (!gw.catalog.loaded) await gw.catalog.ensureLoaded()
  const row = await db
    .from('realtime_client_secrets as s')
    .join('api_keys as k', 'k.id', 's.api_key_id')
    .where('s.secret_hash', hashApiKey(value))
    .where('s.expires_at', '>', new Date())
    .select('s.model', 's.session', 'k.key_hash')
    .first()
  if (!row) throw GatewayError.invalidApiKey('Invalid or expired client secret')
  const principal = await resolvePrincipalByHash(gw.catalog, row.key_hash)
  const session = typeof row.session === 'string' ? JSON.parse(row.session) : row.session
  return { principal, keyHash: row.key_hash, model: row.model, session }
}

/**
 * The `session.update` that applies a secret's configuration to the session
 * the gateway opened upstream with its channel's key (the provider never saw
 * the secret): the configuration as minted, without the model (the session's
 * is fixed at its opening) and the fields only the minting answer carries.
 */
export function sessionUpdateOf(session: Record<string, any>, beta: boolean): string | null {
  const { model: _model, object: _object, id: _id, expires_at: _expires, client_secret: _secret, ...rest } = session
  if (beta) delete rest.type
  if (Object.keys(rest).length === 0 || (Object.keys(rest).length === 1 && rest.type !== undefined)) return null
  return JSON.stringify({ type: 'session.update', session: rest })
}
