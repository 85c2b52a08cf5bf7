import i18nManager from '@adonisjs/i18n/services/main'
import { getSetting, putSetting } from '#services/app_settings'
import { mailConfigured } from '#services/mail/smtp_settings'
import { MAIL_OPTIONS_SETTING } from '#services/mail/site_url'

/**
 * The e-mail options of the panel's Settings > E-mail (app_settings
 * `mail_options`): the product name the messages carry (empty: the
 * portal's own, "AI Gateway" in the reader's language), and whether
 * sign-ups must confirm their address (off by default), and the site
 * address the links start with when APP_URL is not set (site_url.ts).
 */
export interface MailOptions {
  productName: string
  verifySignups: boolean
  /** '' when none was saved */
  siteUrl: string
}

export { MAIL_OPTIONS_SETTING }
export const PRODUCT_NAME_MAX = 80

export async function mailOptions(): Promise<MailOptions> {
  const stored = await getSetting<Partial<MailOptions>>(MAIL_OPTIONS_SETTING, {})
  return {
    productName: String(stored.productName ?? ''),
    verifySignups: stored.verifySignups === true,
    siteUrl: typeof stored.siteUrl === 'string' ? stored.siteUrl : '',
  }
}

export async function putMailOptions(options: MailOptions, client?: Parameters<typeof putSetting>[2]) {
  await putSetting(MAIL_OPTIONS_SETTING, options, client)
}

/** The name in a message's subject, body and sender, in the reader's language when the operator set none. */
export async function productName(locale: string): Promise<string> {
  return (await mailOptions()).productName || i18nManager.locale(locale).t('ui.app.name')
}

/** Sign-ups must confirm their address: the switch is on and e-mail can be sent. */
export async function verificationRequired(): Promise<boolean> {
  return (await mailOptions()).verifySignups && (await mailConfigured())
}
