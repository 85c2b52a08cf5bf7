import env from '#start/env'
import { getSetting } from '#services/app_settings'

/** The app_settings key of the e-mail options (mail_options.ts), which also hold the site address. */
export const MAIL_OPTIONS_SETTING = 'mail_options'

/**
 * The address the links in e-mails start with: APP_URL when set, else the
 * site address saved in the panel's Settings > E-mail; neither: null, and
 * e-mail is off (smtp_settings.ts mailConfigured). Never the request's own
 * Host: whoever asks for a reset link chooses that header, and the victim's
 * mailbox would get a link to the asker's server carrying a live token.
 */
export async function mailSiteBase(): Promise<string | null> {
  const fromEnv = env.get('APP_URL')?.replace(/\/+$/, '')
  if (fromEnv) return fromEnv
  const stored = await getSetting<{ siteUrl?: unknown }>(MAIL_OPTIONS_SETTING, {})
  return typeof stored.siteUrl === 'string' && stored.siteUrl !== '' ? stored.siteUrl : null
}

/**
 * The form's site address as stored: an http(s) URL without credentials,
 * query or fragment, no trailing slash; '' for none. Null when it is not one.
 */
export function siteAddress(text: string): string | null {
  const trimmed = text.trim()
  if (trimmed === '') return ''
  if (trimmed.length > 300 || /[\u0000-\u0020\u007f]/.test(trimmed)) return null
  let url: URL
  try {
    url = new URL(trimmed)
  } catch {
    return null
  }
  if ((url.protocol !== 'https:' && url.protocol !== 'http:') || url.username || url.password || url.search || url.hash) return null
  return `${url.origin}${url.pathname}`.replace(/\/+$/, '')
}
