import db from '@adonisjs/lucid/services/db'
import encryption from '@adonisjs/core/services/encryption'
import { AdminInputError } from '#actions/admin_input_error'
import { writeAudit, type Actor } from '#actions/audit'
import { putSetting } from '#services/app_settings'
import { SMTP_SETTING, storedSmtp, type StoredSmtp } from '#services/mail/smtp_settings'
import { mailOptions, putMailOptions, PRODUCT_NAME_MAX, type MailOptions } from '#services/mail/mail_options'
import { siteAddress } from '#services/mail/site_url'

/** The panel's Settings > E-mail form, as typed. */
export interface MailSettingsInput {
  productName: string
  verifySignups: boolean
  /** The address links in e-mails start with when APP_URL is not set; empty: none */
  siteUrl: string
  host: string
  port: string
  secure: boolean
  user: string
  /** Empty: keep the saved one */
  password: string
  clearPassword: boolean
  from: string
}

const CONTROL = /[\u0000-\u001f\u007f]/
const HOST = /^[A-Za-z0-9.:[\]_-]{1,253}$/
const ADDRESS = /^[^\s@<>"]{1,64}@[^\s@<>"]{1,190}$/

/**
 * Saves the e-mail options and the panel's SMTP server (an empty host
 * removes it); the password is kept encrypted and an empty field keeps the
 * saved one. One audit row, which names what changed, never the password.
 */
export async function setMailSettings(input: MailSettingsInput, actor: Actor) {
  const productName = input.productName.replace(/\s+/g, ' ').trim()
  if (productName.length > PRODUCT_NAME_MAX || CONTROL.test(productName)) {
    throw new AdminInputError(`Product name: ${PRODUCT_NAME_MAX} characters at most, no control characters`, 'productName')
  }
  const siteUrl = siteAddress(input.siteUrl)
  if (siteUrl === null) throw new AdminInputError('Site address: an http(s) address such as https://ai.example.com, without ? or #', 'siteUrl')
  const options: MailOptions = { productName, verifySignups: input.verifySignups, siteUrl }

  const before = await storedSmtp()
  let smtp: StoredSmtp | null = null
  const host = input.host.trim()
  if (host) {
    if (!HOST.test(host)) throw new AdminInputError('SMTP host: a host name or IP address', 'host')
    const port = input.port.trim() === '' ? (input.secure ? 465 : 587) : Number(input.port.trim())
    if (!/^\d{1,5}$/.test(input.port.trim() || '0') || !Number.isInteger(port) || port < 1 || port > 65535) {
      throw new AdminInputError('SMTP port: a whole number from 1 to 65535', 'port')
    }
    const from = input.from.trim()
    if (!ADDRESS.test(from) || from.length > 254) throw new AdminInputError('Sender address: an e-mail address such as noreply@example.com', 'from')
    const user = input.user.trim()
    if (user.length > 254 || CONTROL.test(user)) throw new AdminInputError('SMTP user: 254 characters at most, no control characters', 'user')
    if (input.password.length > 512 || CONTROL.test(input.password)) throw new AdminInputError('SMTP password: 512 characters at most, no control characters', 'password')
    const passwordEncrypted = input.clearPassword
      ? null
      : input.password
        ? encryption.encrypt(input.password)
        : (before?.passwordEncrypted ?? null)
    smtp = { host, port, secure: input.secure, user: user || null, passwordEncrypted, from }
  }
  const optionsBefore = await mailOptions()
  await db.transaction(async (trx) => {
    await putMailOptions(options, trx)
    await putSetting(SMTP_SETTING, smtp, trx)
    await writeAudit(trx, actor, {
      action: 'settings.mail',
      subjectType: 'settings',
      subjectId: null,
      summary: smtp
        ? `E-mail through ${smtp.host}:${smtp.port} as ${smtp.from}; sign-up verification ${options.verifySignups ? 'on' : 'off'}`
        : `No SMTP server in the panel; sign-up verification ${options.verifySignups ? 'on' : 'off'}`,
      before: { ...optionsBefore, ...shown(before) },
      after: { ...options, ...shown(smtp) },
    })
  })
  return { options, smtp }
}

/** The audit row's view of a server: whether a password is set, never it. */
function shown(smtp: StoredSmtp | null) {
  if (!smtp) return { host: null }
  return { host: smtp.host, port: smtp.port, secure: smtp.secure, user: smtp.user, from: smtp.from, authStored: !!smtp.passwordEncrypted }
}
