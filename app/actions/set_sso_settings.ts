import db from '@adonisjs/lucid/services/db'
import encryption from '@adonisjs/core/services/encryption'
import app from '@adonisjs/core/services/app'
import { AdminInputError } from '#actions/admin_input_error'
import { writeAudit, type Actor } from '#actions/audit'
import { putSetting } from '#services/app_settings'
import {
  SSO_SETTING,
  loadSsoPanelSettings,
  type StoredGithub,
  type StoredOidc,
  type StoredSso,
} from '#services/sso/sso_panel_settings'

/**
 * The panel's Settings > Sign-in: the generic OIDC provider and the GitHub
 * OAuth app, each saved on its own (one form each). A client secret is kept
 * encrypted with APP_KEY, an empty field keeps the saved one, "remove"
 * clears it; it is never shown back, nor put in the audit row (only whether
 * one is set). Saved in one transaction with the audit row; this instance's
 * copy is read again at once, the others' on the NOTIFY.
 */
export interface OidcSettingsInput {
  enabled: boolean
  issuer: string
  clientId: string
  /** Empty: keep the saved one */
  clientSecret: string
  clearSecret: boolean
  scopes: string
  label: string
  linkByEmail: boolean
}

export interface GithubSettingsInput {
  enabled: boolean
  clientId: string
  clientSecret: string
  clearSecret: boolean
}

const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/
/** RFC 6749 3.3 scope-token characters */
const SCOPE = /^[\u0021\u0023-\u005b\u005d-\u007e]{1,100}$/
const CLIENT_ID_MAX = 256
const SECRET_MAX = 512
const LABEL_MAX = 40

/**
 * An issuer as stored: an https URL (http outside production: a local test
 * provider), no credentials, query or fragment, no trailing slash. It is the
 * exact string the id_token's `iss` must equal, so nothing else is changed.
 */
export function issuerAddress(text: string, production = app.inProduction): string {
  const trimmed = text.trim()
  const refuse = (why: string): never => {
    throw new AdminInputError(`Issuer: ${why}`, 'issuer')
  }
  if (trimmed.length > 300) refuse('300 characters at most')
  if (/[\u0000-\u0020\u007f-\u009f]/.test(trimmed)) refuse('no spaces or control characters')
  let url: URL
  try {
    url = new URL(trimmed)
  } catch {
    return refuse('an address such as https://login.example.com/realms/main')
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') refuse('an https:// address')
  if (url.protocol === 'http:' && production) refuse('https:// only (the sign-in\'s codes and tokens would cross the network in the clear)')
  if (url.username || url.password || url.search || url.hash || trimmed.includes('?') || trimmed.includes('#')) {
    refuse('no user name, password, ? or # in it')
  }
  return trimmed.replace(/\/+$/, '')
}

function clientId(text: string, field: string, what: string): string {
  const value = text.trim()
  if (value.length > CLIENT_ID_MAX || CONTROL.test(value) || /\s/.test(value)) {
    throw new AdminInputError(`${what}: ${CLIENT_ID_MAX} characters at most, no spaces or control characters`, field)
  }
  return value
}

/** The new encrypted secret, the saved one (empty field), or none (removed). */
function secret(input: { clientSecret: string; clearSecret: boolean }, saved: string | null | undefined): string | null {
  if (input.clearSecret) return null
  if (input.clientSecret === '') return saved ?? null
  if (input.clientSecret.length > SECRET_MAX || CONTROL.test(input.clientSecret)) {
    throw new AdminInputError(`Client secret: ${SECRET_MAX} characters at most, no control characters`, 'clientSecret')
  }
  return encryption.encrypt(input.clientSecret)
}

function scopes(text: string): string {
  const list = text.trim().split(/\s+/).filter(Boolean)
  if (list.length > 20 || !list.every((scope) => SCOPE.test(scope))) {
    throw new AdminInputError('Scopes: up to 20 names separated by spaces (letters, digits and punctuation, no quotes or backslashes)', 'scopes')
  }
  return list.join(' ')
}

function label(text: string): string {
  const value = text.replace(/\s+/g, ' ').trim()
  if (value.length > LABEL_MAX || CONTROL.test(value)) throw new AdminInputError(`Button label: ${LABEL_MAX} characters at most, no control characters`, 'label')
  return value
}

export async function setOidcSettings(input: OidcSettingsInput, actor: Actor): Promise<StoredOidc> {
  const issuer = input.issuer.trim() === '' ? '' : issuerAddress(input.issuer)
  const id = clientId(input.clientId, 'clientId', 'Client ID')
  const scopeList = scopes(input.scopes)
  const buttonLabel = label(input.label)
  return save('oidc', actor, (before) => {
    const oidc: StoredOidc = {
      enabled: input.enabled,
      issuer,
      clientId: id,
      secretEncrypted: secret(input, before?.secretEncrypted),
      scopes: scopeList,
      label: buttonLabel,
      linkByEmail: input.linkByEmail,
    }
    if (oidc.enabled && (!oidc.issuer || !oidc.clientId)) {
      throw new AdminInputError('To switch OpenID Connect on, give the issuer and the client ID', oidc.issuer ? 'clientId' : 'issuer')
    }
    return { value: oidc, summary: `OpenID Connect sign-in ${oidc.enabled ? 'on' : 'off'}${oidc.issuer ? ` (${oidc.issuer})` : ''}` }
  })
}

export async function setGithubSettings(input: GithubSettingsInput, actor: Actor): Promise<StoredGithub> {
  const id = clientId(input.clientId, 'clientId', 'Client ID')
  return save('github', actor, (before) => {
    const github: StoredGithub = { enabled: input.enabled, clientId: id, secretEncrypted: secret(input, before?.secretEncrypted) }
    if (github.enabled && (!github.clientId || !github.secretEncrypted)) {
      throw new AdminInputError("To switch GitHub on, give the OAuth app's client ID and secret", github.clientId ? 'clientSecret' : 'clientId')
    }
    return { value: github, summary: `GitHub sign-in ${github.enabled ? 'on' : 'off'}` }
  })
}

/**
 * One provider's part of the row replaced, the other's kept: read under a
 * row lock, so two administrators saving the two forms at once lose neither.
 */
async function save<P extends keyof StoredSso>(
  provider: P,
  actor: Actor,
  build: (before: StoredSso[P]) => { value: NonNullable<StoredSso[P]>; summary: string }
): Promise<NonNullable<StoredSso[P]>> {
  const saved = await db.transaction(async (trx) => {
    // The row is made empty first if missing, so there is always a row to lock: two first saves at once
    // (no row yet) both read nothing, and the later one's upsert dropped the other's provider.
    await trx
      .table('app_settings')
      .insert({ key: SSO_SETTING, value: JSON.stringify({}), updated_at: new Date() })
      .onConflict('key')
      .ignore()
    const row = await trx.from('app_settings').where('key', SSO_SETTING).forUpdate().first()
    const before: StoredSso = { oidc: row?.value?.oidc ?? null, github: row?.value?.github ?? null }
    const { value, summary } = build(before[provider])
    await putSetting(SSO_SETTING, { ...before, [provider]: value }, trx)
    await writeAudit(trx, actor, {
      action: 'settings.sso',
      subjectType: 'settings',
      subjectId: null,
      summary,
      before: shown(before[provider]),
      after: shown(value),
    })
    return value
  })
  await loadSsoPanelSettings()
  return saved
}

/**
 * The audit row's view of a provider: whether a secret is set, never it (nor
 * its ciphertext). `authStored` as Settings > E-mail names it: the audit log
 * drops every field whose name says secret.
 */
function shown(settings: StoredOidc | StoredGithub | null) {
  if (!settings) return null
  const { secretEncrypted, ...rest } = settings
  return { ...rest, authStored: !!secretEncrypted }
}
