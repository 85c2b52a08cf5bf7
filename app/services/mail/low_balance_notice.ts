import db from '@adonisjs/lucid/services/db'
import i18nManager from '@adonisjs/i18n/services/main'
import logger from '@adonisjs/core/services/logger'
import limiter from '@adonisjs/limiter/services/main'
import { errors } from '@adonisjs/limiter'
import { queueMail } from '#services/mail/mail_outbox'
import { productName } from '#services/mail/mail_options'
import { mailConfigured } from '#services/mail/smtp_settings'
import { mailSiteBase } from '#services/mail/site_url'
import { localeFormatters } from '#services/locale'
import { queueUserWebhook } from '#services/user_webhook'
import { displayUsd } from '#gateway/metering/money'

/**
 * The low-balance e-mail a user asks for on the Billing page: once each
 * time the balance falls below their threshold (users.low_balance_threshold,
 * migration 1018), again only after it has been at or above it (a trigger
 * clears the mark).
 *
 * `claimLowBalanceNotices` runs after a metering batch commits, only for
 * users the gateway's cache already sees below their threshold and not yet
 * told (low_balance_watch.ts): one conditional UPDATE marks them told, and
 * only the instance whose UPDATE changed the row mails, however many
 * instances and batches see the same dip. The user's own webhook, when set
 * (user_webhook.ts), gets the same notice as `user.low_balance`, e-mail on
 * or off, within the same hourly bound.
 */

/** What a user may type as a threshold: dollars and cents, at most this much (no reason for more; keeps the column sane). */
export const LOW_BALANCE_MAX = 1_000_000
/** The form's suggestion when the notice is off */
export const LOW_BALANCE_SUGGESTED = '5'

const CLAIM_SQL = `
WITH won AS (
  UPDATE users SET low_balance_notified = true
   WHERE id = ANY(?::bigint[]) AND NOT low_balance_notified
     AND low_balance_threshold IS NOT NULL AND balance < low_balance_threshold
     AND disabled_at IS NULL
  RETURNING id, email, balance, low_balance_threshold, notice_locale, alert_webhook_url, alert_webhook_secret
)
SELECT id, email, balance, low_balance_threshold, notice_locale, alert_webhook_url, alert_webhook_secret, true AS won FROM won
UNION ALL
SELECT id, NULL, NULL, NULL, NULL, NULL, NULL, false FROM users WHERE id = ANY(?::bigint[]) AND low_balance_notified`

export interface ClaimResult {
  /** Users whose notice is sent (by this call or before): the cache stops asking for them */
  told: number[]
}

/**
 * Marks the users' notice sent where their committed balance is below the
 * threshold and it was not, and mails those. Users whose committed balance
 * is not below yet (their cache counted charges still in the queue) are
 * left as they were: the batch that commits those charges asks again.
 */
export async function claimLowBalanceNotices(userIds: number[]): Promise<ClaimResult> {
  const ids = `{${userIds.join(',')}}`
  const { rows } = await db.rawQuery(CLAIM_SQL, [ids, ids])
  const won = rows.filter((row: any) => row.won)
  if (won.length > 0) await mailNotices(won)
  return { told: rows.map((row: any) => Number(row.id)) }
}

async function mailNotices(rows: any[]) {
  // E-mail switched off since the threshold was set: the dip is marked all the same (not retried every batch).
  const siteBase = (await mailConfigured()) ? await mailSiteBase() : null
  if (!siteBase) logger.info({ users: rows.length }, 'low-balance notice not mailed: e-mail is off')
  for (const row of rows) {
    if (!siteBase && !row.alert_webhook_url) continue
    if (!(await mayMail(Number(row.id)))) {
      logger.info({ userId: Number(row.id) }, 'low-balance notice not sent: the hourly bound for this user is reached')
      continue
    }
    // The user's own webhook (user_webhook.ts), with or without e-mail.
    const balanceUsd = displayUsd(String(row.balance), 2)
    const thresholdUsd = displayUsd(String(row.low_balance_threshold), 2)
    queueUserWebhook(Number(row.id), row.alert_webhook_url, row.alert_webhook_secret, {
      event: 'user.low_balance',
      text: `Your balance is $${balanceUsd}, below the $${thresholdUsd} you chose to be warned at.`,
      data: { user_id: Number(row.id), balance: balanceUsd, threshold: thresholdUsd },
    })
    if (!siteBase) continue
    const locale = i18nManager.supportedLocales().includes(row.notice_locale) ? row.notice_locale : i18nManager.defaultLocale
    const i18n = i18nManager.locale(locale)
    const product = await productName(locale)
    const money = localeFormatters(i18n).money
    const balance = money(String(row.balance))
    const threshold = money(String(row.low_balance_threshold))
    queueMail({
      to: row.email,
      senderName: product,
      subject: i18n.t('mail.low_balance.subject', { product, threshold }),
      view: 'low_balance',
      data: { t: i18n.t.bind(i18n), product, balance, threshold, link: `${siteBase}/dashboard/billing` },
    })
  }
}

/**
 * At most this many notices a user an hour. Each dip is mailed once, but a
 * dip is re-armed by a top-up and by a threshold saved at or below the
 * balance: saving a threshold a cent under the balance and making one call,
 * again and again, mailed the user's address (through the operator's SMTP
 * server) as often as they liked. A dip past the bound is marked told all
 * the same: the next notice comes with the next dip.
 */
export const LOW_BALANCE_MAILS_PER_HOUR = 3
// In Postgres whatever LIMITER_STORE says (as budget_alerts.ts's bound): in memory each instance allowed as many.
const mailBound = () => limiter.use('database', { requests: LOW_BALANCE_MAILS_PER_HOUR, duration: '1 hour' })

async function mayMail(userId: number): Promise<boolean> {
  try {
    await mailBound().consume(`low_balance_mail_${userId}`)
    return true
  } catch (error) {
    if (error instanceof errors.E_TOO_MANY_REQUESTS) return false
    throw error
  }
}

/**
 * The threshold as typed in the form: '' (off), or dollars with up to two
 * decimals, above 0 and at most LOW_BALANCE_MAX. Null: not one (the form
 * says so). `1e3`, signs, NUL and the like are refused, not read.
 */
export function parseThreshold(text: string): string | null {
  const trimmed = text.trim()
  if (trimmed === '') return ''
  if (!/^\d{1,7}(\.\d{1,2})?$/.test(trimmed)) return null
  const value = Number(trimmed)
  if (!(value > 0) || value > LOW_BALANCE_MAX) return null
  return trimmed
}

/**
 * Saves the user's threshold ('' turns the notice off) and the language to
 * write in. A threshold the balance is already below counts as told: the
 * user is looking at the balance now, and the next notice comes after a
 * top-up above it.
 */
export async function setLowBalanceThreshold(userId: number, threshold: string, locale: string) {
  if (threshold === '') {
    await db.from('users').where('id', userId).update({ low_balance_threshold: null, low_balance_notified: false })
    return
  }
  await db.rawQuery(
    `UPDATE users SET low_balance_threshold = ?::numeric, notice_locale = ?,
            low_balance_notified = balance < ?::numeric
      WHERE id = ?`,
    [threshold, locale, threshold, userId]
  )
}

/** The Billing page's form: the saved threshold ('' when off) and the amount the field shows. */
export async function lowBalanceSetting(userId: number): Promise<{ on: boolean; amount: string }> {
  const row = await db.from('users').where('id', userId).select('low_balance_threshold').first()
  const saved = row?.low_balance_threshold ?? null
  // numeric(24,12) reads back as '5.000000000000': the form shows what was typed.
  return saved === null ? { on: false, amount: LOW_BALANCE_SUGGESTED } : { on: true, amount: String(Number(saved)) }
}
