import db from '@adonisjs/lucid/services/db'
import i18nManager from '@adonisjs/i18n/services/main'
import logger from '@adonisjs/core/services/logger'
import limiter from '@adonisjs/limiter/services/main'
import { errors } from '@adonisjs/limiter'
import type { AlertSender } from '#gateway/alerts/alert_sender'
import type { BudgetCrossing } from '#gateway/metering/budget_watch'
import { displayUsd } from '#gateway/metering/money'
import { appUrl } from '#config/app'
import { queueMail } from '#services/mail/mail_outbox'
import { productName } from '#services/mail/mail_options'
import { mailConfigured } from '#services/mail/smtp_settings'
import { mailSiteBase } from '#services/mail/site_url'
import { localeFormatters } from '#services/locale'
import { queueUserWebhook } from '#services/user_webhook'

/**
 * Budget alerts, claimed after a metering batch commits (budget_watch.ts
 * sends only the crossings the cache sees and was not told of):
 *
 * - a key's spend reaching 80 % (`key.spend_cap_warning`) and 100 %
 *   (`key.spend_cap_reached`) of its spend cap in its period: the operator's
 *   alert, and the key's owner an e-mail and their own webhook;
 * - a key's soft budget (`key.soft_budget_crossed`) and a customer's shared
 *   budget's soft budget (`customer.soft_budget_crossed`): the operator's
 *   alert. Never a refusal.
 *
 * Each once per threshold, period and amount, however many instances and
 * batches see it: one `INSERT ... ON CONFLICT DO NOTHING` into
 * budget_alert_marks (migration 1022) against the committed spend; only the
 * statement that inserted the row sends.
 */

const KEY_CLAIM_SQL = `
WITH due AS (SELECT * FROM unnest(?::bigint[], ?::smallint[]) AS d(id, threshold)),
cand AS (
  SELECT d.id, d.threshold, k.user_id, k.name, k.spend_period, k.spend_limit, k.soft_budget,
    CASE WHEN k.spend_period IS NULL THEN '-infinity'::date
         ELSE date_trunc(k.spend_period, now() AT TIME ZONE 'UTC')::date END AS period,
    CASE WHEN k.spend_period IS NULL THEN k.spent
         WHEN k.period_start = date_trunc(k.spend_period, now() AT TIME ZONE 'UTC')::date THEN k.period_spent
         ELSE 0 END AS counted,
    CASE WHEN d.threshold = 0 THEN k.soft_budget ELSE k.spend_limit END AS amount
  FROM due d JOIN api_keys k ON k.id = d.id
  WHERE k.revoked_at IS NULL
),
crossed AS (
  SELECT * FROM cand
   WHERE amount > 0 AND counted * 100 >= amount * (CASE WHEN threshold = 0 THEN 100 ELSE threshold END)
),
won AS (
  INSERT INTO budget_alert_marks (kind, subject_id, threshold, period_start)
  SELECT 'key', id, threshold, period FROM crossed
  ON CONFLICT DO NOTHING
  RETURNING subject_id, threshold
)
SELECT c.id, c.threshold, c.user_id, c.name, c.spend_period, c.amount, c.counted,
       (w.subject_id IS NOT NULL) AS won,
       u.email, u.notice_locale, u.alert_webhook_url, u.alert_webhook_secret
  FROM crossed c
  JOIN users u ON u.id = c.user_id
  LEFT JOIN won w ON w.subject_id = c.id AND w.threshold = c.threshold
 WHERE w.subject_id IS NOT NULL
    OR EXISTS (SELECT 1 FROM budget_alert_marks m
                WHERE m.kind = 'key' AND m.subject_id = c.id AND m.threshold = c.threshold AND m.period_start = c.period)`

const END_USER_CLAIM_SQL = `
WITH cand AS (
  SELECT e.id, e.user_id, e.end_user, e.spend_period, b.budget_id, b.soft_budget AS amount,
    CASE WHEN e.spend_period IS NULL THEN '-infinity'::date
         ELSE date_trunc(e.spend_period, now() AT TIME ZONE 'UTC')::date END AS period,
    CASE WHEN e.spend_period IS NULL THEN e.spent
         WHEN e.period_start = date_trunc(e.spend_period, now() AT TIME ZONE 'UTC')::date THEN e.period_spent
         ELSE 0 END AS counted
  FROM end_users e JOIN budgets b ON b.id = e.budget_id
  WHERE e.id = ANY(?::bigint[])
),
crossed AS (SELECT * FROM cand WHERE amount > 0 AND counted >= amount),
won AS (
  INSERT INTO budget_alert_marks (kind, subject_id, threshold, period_start)
  SELECT 'end_user', id, 0, period FROM crossed
  ON CONFLICT DO NOTHING
  RETURNING subject_id
)
SELECT c.*, (w.subject_id IS NOT NULL) AS won, u.email
  FROM crossed c
  JOIN users u ON u.id = c.user_id
  LEFT JOIN won w ON w.subject_id = c.id
 WHERE w.subject_id IS NOT NULL
    OR EXISTS (SELECT 1 FROM budget_alert_marks m
                WHERE m.kind = 'end_user' AND m.subject_id = c.id AND m.threshold = 0 AND m.period_start = c.period)`

/**
 * Claims the crossings (marks the ones whose committed spend is past the
 * line and not marked yet) and sends what this call marked. `told`: the
 * crossings marked now or before (the cache stops asking for them); a
 * crossing whose committed spend is not past the line yet (the cache counted
 * charges still queued) is left out: the batch that commits them asks again.
 */
export async function claimBudgetAlerts(crossings: BudgetCrossing[], alerts: AlertSender | null): Promise<{ told: BudgetCrossing[] }> {
  await pruneOldMarks()
  const told: BudgetCrossing[] = []
  const keys = crossings.filter((c) => c.kind === 'key')
  if (keys.length > 0) {
    const { rows } = await db.rawQuery(KEY_CLAIM_SQL, [`{${keys.map((c) => c.id).join(',')}}`, `{${keys.map((c) => c.threshold).join(',')}}`])
    for (const row of rows) {
      told.push({ kind: 'key', id: Number(row.id), threshold: Number(row.threshold) as BudgetCrossing['threshold'] })
      if (row.won) await sendKeyAlert(row, alerts)
    }
  }
  const endUsers = crossings.filter((c) => c.kind === 'end_user')
  if (endUsers.length > 0) {
    const { rows } = await db.rawQuery(END_USER_CLAIM_SQL, [`{${endUsers.map((c) => c.id).join(',')}}`])
    for (const row of rows) {
      told.push({ kind: 'end_user', id: Number(row.id), threshold: 0 })
      if (row.won) sendCustomerAlert(row, alerts)
    }
  }
  return { told }
}

/**
 * Marks of periods long over are of no use (a month's is the longest kept
 * period; lifetime marks, '-infinity', stay): deleted at most once an hour
 * per process, on the claim path, so the table holds about two months of
 * crossings.
 */
const PRUNE_EVERY_MS = 3_600_000
let prunedAt = 0

async function pruneOldMarks() {
  if (Date.now() - prunedAt < PRUNE_EVERY_MS) return
  prunedAt = Date.now()
  await db.rawQuery(
    `DELETE FROM budget_alert_marks WHERE period_start > '-infinity'::date AND period_start < (now() AT TIME ZONE 'UTC')::date - 62`
  )
}

const PER: Record<string, string> = { day: 'per day (UTC)', week: 'per week (UTC)', month: 'per month (UTC)' }

async function sendKeyAlert(row: any, alerts: AlertSender | null) {
  const threshold = Number(row.threshold)
  const keyId = Number(row.id)
  const userId = Number(row.user_id)
  const amount = displayUsd(String(row.amount))
  const spent = displayUsd(String(row.counted))
  const per = row.spend_period ? ` ${PER[row.spend_period]}` : ''
  const data = {
    key_id: keyId,
    key_name: row.name,
    user_id: userId,
    email: row.email,
    spend: spent,
    spend_period: row.spend_period ?? null,
  }
  if (threshold === 0) {
    alerts?.notify('key.soft_budget_crossed', keyId, async () => ({
      text: `Key "${row.name}" of ${row.email} crossed its soft budget of $${amount}${per}: $${spent} spent (calls still served). ${appUrl}/admin/keys/${keyId}`,
      data: { ...data, soft_budget: amount },
    }))
    return
  }
  const event = threshold === 100 ? 'key.spend_cap_reached' : 'key.spend_cap_warning'
  const operatorText =
    threshold === 100
      ? `Key "${row.name}" of ${row.email} reached its spend cap of $${amount}${per}: it answers 402 until ${row.spend_period ? 'the next period or ' : ''}the cap is raised. ${appUrl}/admin/keys/${keyId}`
      : `Key "${row.name}" of ${row.email} has used ${threshold}% of its spend cap of $${amount}${per}: $${spent} spent. ${appUrl}/admin/keys/${keyId}`
  alerts?.notify(event, `${keyId}:${threshold}`, async () => ({ text: operatorText, data: { ...data, spend_limit: amount, threshold } }))
  if (!(await mayNotify(userId))) {
    logger.info({ userId, keyId }, 'key budget notice not sent: the hourly bound for this user is reached')
    return
  }
  const userText =
    threshold === 100
      ? `Your key "${row.name}" reached its spend cap of $${amount}${per}: it answers 402 until ${row.spend_period ? 'the next period or ' : ''}the cap is raised.`
      : `Your key "${row.name}" has used ${threshold}% of its spend cap of $${amount}${per}: $${spent} spent.`
  queueUserWebhook(userId, row.alert_webhook_url, row.alert_webhook_secret, {
    event,
    text: userText,
    data: { key_id: keyId, key_name: row.name, spend: spent, spend_limit: amount, spend_period: row.spend_period ?? null, threshold },
  })
  await mailKeyNotice(row, threshold, amount, spent)
}

async function mailKeyNotice(row: any, threshold: number, amount: string, spent: string) {
  const siteBase = (await mailConfigured()) ? await mailSiteBase() : null
  if (!siteBase) return
  const locale = i18nManager.supportedLocales().includes(row.notice_locale) ? row.notice_locale : i18nManager.defaultLocale
  const i18n = i18nManager.locale(locale)
  const product = await productName(locale)
  const money = localeFormatters(i18n).money
  const values = { product, key: String(row.name), cap: money(amount), spent: money(spent), percent: threshold }
  const which = threshold === 100 ? 'reached' : 'warning'
  queueMail({
    to: row.email,
    senderName: product,
    subject: i18n.t(`mail.key_budget.subject_${which}`, values),
    view: 'key_budget',
    data: { t: i18n.t.bind(i18n), which, values, link: `${siteBase}/dashboard/keys` },
  })
}

function sendCustomerAlert(row: any, alerts: AlertSender | null) {
  const amount = displayUsd(String(row.amount))
  const spent = displayUsd(String(row.counted))
  const per = row.spend_period ? ` ${PER[row.spend_period]}` : ''
  alerts?.notify('customer.soft_budget_crossed', Number(row.id), async () => ({
    text: `Customer "${row.end_user}" of ${row.email} crossed the soft budget of $${amount}${per} of budget "${row.budget_id}": $${spent} spent (calls still served).`,
    data: { end_user: row.end_user, owner_id: Number(row.user_id), owner: row.email, budget_id: row.budget_id, soft_budget: amount, spend: spent, spend_period: row.spend_period ?? null },
  }))
}

/**
 * At most this many key-budget notices (e-mail and webhook) a user an hour.
 * Each threshold is sent once a period, but a cap the user changes on their
 * own key re-arms it: without a bound, editing the cap and making a call,
 * again and again, would mail their address (and post to their URL) as
 * often as they liked.
 */
export const KEY_BUDGET_NOTICES_PER_HOUR = 6
// Counted in Postgres (table rate_limits) whatever LIMITER_STORE says: in each instance's memory, N instances sent N
// times the bound, and a restart forgot it. One query per notice, and notices are rare.
const noticeBound = () => limiter.use('database', { requests: KEY_BUDGET_NOTICES_PER_HOUR, duration: '1 hour' })

async function mayNotify(userId: number): Promise<boolean> {
  try {
    await noticeBound().consume(`key_budget_notice_${userId}`)
    return true
  } catch (error) {
    if (error instanceof errors.E_TOO_MANY_REQUESTS) return false
    throw error
  }
}
