import type { HttpContext } from '@adonisjs/core/http'
import { settleMetering } from '#services/settle_metering'
import { balanceFigures, ledgerCsv, ledgerSummary } from '#services/portal_report'
import { stripeSettings } from '#services/payments/stripe_settings'
import Payment from '#models/payment'
import env from '#start/env'
import { referralSummary, referralTerms, referralsOn } from '#actions/referrals'
import { requestBaseUrl } from '#controllers/pages/docs_controller'
import { mailConfigured } from '#services/mail/smtp_settings'
import { lowBalanceSetting } from '#services/mail/low_balance_notice'
import { userWebhookSetting } from '#services/user_webhook'

/** Card payments listed on the page: the latest few (the ledger has every paid one). */
const RECENT_PAYMENTS = 5

export default class BillingController {
  /** GET /dashboard/billing: balance, the ledger (charges summed per day), card top-ups when on, and codes. */
  async show(ctx: HttpContext) {
    return renderBilling(ctx, null)
  }

  /** GET /dashboard/billing.csv: the whole ledger, exact amounts. */
  async csv({ response, auth }: HttpContext) {
    const user = auth.use('web').getUserOrFail()
    await settleMetering()
    response.header('content-type', 'text/csv; charset=utf-8')
    response.header('content-disposition', `attachment; filename="ledger-${new Date().toISOString().slice(0, 10)}.csv"`)
    return response.send(await ledgerCsv(user.id))
  }
}

/**
 * The Billing page; `webhookSecret` is the signing secret of a webhook just
 * saved, rendered in this response only (never in a cookie), as a new key is.
 */
export async function renderBilling({ view, auth, request, response }: HttpContext, webhookSecret: string | null) {
  const user = auth.use('web').getUserOrFail()
  if (webhookSecret) response.header('cache-control', 'no-store')
  // Charges still in the metering queue belong on this page (as on /v1/balance).
  await settleMetering()
  const settings = stripeSettings()
  const terms = await referralTerms()
  const [figures, ledger, payments, referrals, lowBalance, mail, webhookUrl] = await Promise.all([
    balanceFigures(user.id),
    ledgerSummary(user.id),
    settings ? Payment.query().where('user_id', user.id).orderBy('id', 'desc').limit(RECENT_PAYMENTS) : [],
    referralsOn(terms) ? referralSummary(user.id) : null,
    lowBalanceSetting(user.id),
    mailConfigured(),
    userWebhookSetting(user.id),
  ])
  // The link goes to the public address: APP_URL when set, else the one the user reached us at.
  const siteBase = env.get('APP_URL')?.replace(/\/+$/, '') || requestBaseUrl(request)
  return view.render('pages/portal/billing', {
    figures,
    ledger,
    payments,
    card: settings ? { min: settings.minUsd, max: settings.maxUsd } : null,
    cancelled: request.input('checkout') === 'cancelled',
    lowBalance: { ...lowBalance, mail },
    webhook: { url: webhookUrl, secret: webhookSecret },
    referrals: referrals && { ...referrals, terms, link: `${siteBase}/register?ref=${referrals.code}` },
  })
}
