import encryption from '@adonisjs/core/services/encryption'
import logger from '@adonisjs/core/services/logger'
import { getSetting } from '#services/app_settings'
import { onAppSettingChange } from '#services/app_setting_notices'

/**
 * The single sign-on providers set in the panel's Settings > Sign-in
 * (app_settings `sso`), each client secret encrypted with APP_KEY as the
 * SMTP password is. The pages read them synchronously (the login buttons,
 * the CSP's form-action), so they live in memory: loaded at boot, reloaded
 * on the `app_settings:sso` notice (every instance), and after a save on
 * this one at once. A snapshot older than STALE_MS is read again in the
 * background when used, should a notice be lost. The environment still wins
 * (sso_settings.ts).
 */
export const SSO_SETTING = 'sso'
const STALE_MS = 60_000

export interface StoredOidc {
  enabled: boolean
  issuer: string
  clientId: string
  secretEncrypted: string | null
  scopes: string
  label: string
  linkByEmail: boolean
}

export interface StoredGithub {
  enabled: boolean
  clientId: string
  secretEncrypted: string | null
}

export interface StoredSso {
  oidc: StoredOidc | null
  github: StoredGithub | null
}

/** What the snapshot holds: the stored values with the secrets decrypted once (null: none, or unreadable). */
export interface PanelSso {
  oidc: (Omit<StoredOidc, 'secretEncrypted'> & { clientSecret: string | null; secretSet: boolean }) | null
  github: (Omit<StoredGithub, 'secretEncrypted'> & { clientSecret: string | null; secretSet: boolean }) | null
  /** A saved secret that APP_KEY cannot decrypt (the page says so; the provider then lacks its secret) */
  unreadable: Array<'oidc' | 'github'>
}

const EMPTY: PanelSso = { oidc: null, github: null, unreadable: [] }
let snapshot: PanelSso = EMPTY
let loadedAt = 0
let loading: Promise<void> | null = null
let queued: Promise<void> | null = null

export async function storedSso(): Promise<StoredSso> {
  const value = await getSetting<Partial<StoredSso> | null>(SSO_SETTING, null)
  return { oidc: value?.oidc ?? null, github: value?.github ?? null }
}

function decrypt(encrypted: string | null, provider: 'oidc' | 'github', unreadable: PanelSso['unreadable']): string | null {
  if (!encrypted) return null
  let secret: string | null = null
  try {
    secret = encryption.decrypt<string>(encrypted)
  } catch {
    // Saved under an APP_KEY since retired: as unreadable as a null answer.
  }
  if (typeof secret === 'string') return secret
  unreadable.push(provider)
  return null
}

/**
 * Reads the row again; a failure keeps the last snapshot. A read already out
 * may have begun before the caller's commit: one more follows it, shared by
 * every caller meanwhile.
 */
export function loadSsoPanelSettings(): Promise<void> {
  if (loading) {
    queued ??= loading.then(() => {
      queued = null
      return loadSsoPanelSettings()
    })
    return queued
  }
  loading = (async () => {
    try {
      const stored = await storedSso()
      const unreadable: PanelSso['unreadable'] = []
      const { secretEncrypted: oidcSecret, ...oidc } = stored.oidc ?? ({} as StoredOidc)
      const { secretEncrypted: githubSecret, ...github } = stored.github ?? ({} as StoredGithub)
      snapshot = {
        oidc: stored.oidc ? { ...oidc, clientSecret: decrypt(oidcSecret, 'oidc', unreadable), secretSet: !!oidcSecret } : null,
        github: stored.github ? { ...github, clientSecret: decrypt(githubSecret, 'github', unreadable), secretSet: !!githubSecret } : null,
        unreadable,
      }
      loadedAt = Date.now()
    } catch (error) {
      logger.warn({ err: error }, 'sso: the panel settings could not be read; the last ones stay')
    } finally {
      loading = null
    }
  })()
  return loading
}

/** The panel's providers now (no await: the pages and the CSP read it per request). */
export function panelSso(): PanelSso {
  if (Date.now() - loadedAt > STALE_MS && !loading) loadSsoPanelSettings().catch(() => {})
  return snapshot
}

/** For tests: the snapshot forgotten (a test that empties app_settings under it). */
export function forgetSsoPanelSettings() {
  snapshot = EMPTY
  loadedAt = 0
}

onAppSettingChange(SSO_SETTING, loadSsoPanelSettings)
