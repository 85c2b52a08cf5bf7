import type { HttpContext } from '@adonisjs/core/http'
import { settleMetering } from '#services/settle_metering'
import { balanceFigures, ledgerCsv, ledgerSummary } from '#services/portal_report'

export default class BillingController {
  /** GET /dashboard/billing: balance, the ledger (charges summed per day) and how to get a top-up. */
  async show({ view, auth }: HttpContext) {
    const user = auth.use('web').getUserOrFail()
    // Charges still in the metering queue belong on this page (as on /v1/balance).
    await settleMetering()
    const [figures, ledger] = await Promise.all([balanceFigures(user.id), ledgerSummary(user.id)])
    return view.render('pages/portal/billing', { figures, ledger })
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
