import encryption from '@adonisjs/core/services/encryption'
import { getSetting } from '#services/app_settings'
import { smtpFromEnv, type SmtpSettings } from '#services/mail/smtp_env'
import { mailSiteBase } from '#services/mail/site_url'

export type { SmtpSettings }

/**
 * Where outgoing e-mail goes. One precedence: the environment
 * (SMTP_URL, or SMTP_HOST with SMTP_PORT / SMTP_USER / SMTP_PASSWORD /
 * SMTP_SECURE, and MAIL_FROM) wins whole when it names a server; otherwise
 * the panel's Settings > E-mail (app_settings `smtp`, its password kept
 * encrypted with APP_KEY and never shown back). Neither: no e-mail, and the
 * features that need it (forgotten password, sign-up verification) are off.
 * Read by the pages that need it, never on the API path.
 */

/** What the panel stores (the password encrypted). */
export interface StoredSmtp {
  host: string
  port: number
  secure: boolean
  user: string | null
  passwordEncrypted: string | null
  from: string
}

export const SMTP_SETTING = 'smtp'

/** The server e-mail goes through now (the environment's, else the panel's), or null: e-mail is off. */
export async function smtpSettings(): Promise<SmtpSettings | null> {
  const fromEnv = smtpFromEnv()
  if (fromEnv) return fromEnv.from ? fromEnv : null
  const stored = await storedSmtp()
  if (!stored?.host || !stored.from) return null
  return {
    source: 'panel',
    host: stored.host,
    port: stored.port,
    secure: stored.secure,
    user: stored.user,
    password: stored.passwordEncrypted ? encryption.decrypt<string>(stored.passwordEncrypted) : null,
    from: stored.from,
  }
}

export async function storedSmtp(): Promise<StoredSmtp | null> {
  return getSetting<StoredSmtp | null>(SMTP_SETTING, null)
}

/**
 * E-mail can be sent, and its links have an address to start with (APP_URL
 * or the panel's site address): the pages offer "Forgot password?" and
 * verification can be required.
 */
export async function mailConfigured(): Promise<boolean> {
  try {
    return (await smtpSettings()) !== null && (await mailSiteBase()) !== null
  } catch {
    // A panel password saved under an APP_KEY since retired: treated as not configured (the Settings page says so).
    return false
  }
}
