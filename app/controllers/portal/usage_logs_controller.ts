import type { HttpContext } from '@adonisjs/core/http'
import { settleMetering } from '#services/settle_metering'
import { DateTime } from 'luxon'
import { errors as vineErrors } from '@vinejs/vine'
import { usageFilterValidator } from '#validators/portal'
import { endUserSpendOf, usageCsv, usageFilterChoices, usagePage, type UsageFilters } from '#services/portal_report'
import { retentionNotice } from '#services/usage_retention'
import db from '@adonisjs/lucid/services/db'
import { loggedBodies } from '#services/logged_bodies'

export default class UsageLogsController {
  /** GET /dashboard/usage: the user's own requests with filters and paging. */
  async index(ctx: HttpContext) {
    const { view, auth } = ctx
    const user = auth.use('web').getUserOrFail()
    const { filters, page, query, errors, fieldErrors, refused } = await this.filters(ctx)
    await settleMetering()
    // Filters refused: the form with the messages and what was typed, no list of another range or filter.
    const [result, choices, endUsers] = await Promise.all([
      refused ? null : usagePage(user.id, filters, page),
      usageFilterChoices(user.id),
      refused ? [] : endUserSpendOf(user.id, filters),
    ])
    // A model only ever asked for (a fallback answered each time) has no counters: keep the filter shown.
    if (filters.model && !choices.models.includes(filters.model)) choices.models.push(filters.model)
    return view.render('pages/portal/usage', { result, choices, endUsers, query, errors, fieldErrors, retention: retentionNotice() })
  }

  /**
   * GET /dashboard/usage/:id: one of the user's own requests in full: its
   * request id (to quote), tokens by kind, exact cost, timings, and, when
   * the operator keeps bodies (LOG_BODIES), what was sent and what came
   * back. Another user's id is a 404.
   */
  async show({ params, view, auth, response, i18n }: HttpContext) {
    const user = auth.use('web').getUserOrFail()
    await settleMetering()
    const row = await db
      .from('usage_records as u')
      .leftJoin('api_keys as k', 'k.id', 'u.api_key_id')
      .where('u.id', Number(params.id))
      .where('u.user_id', user.id)
      .select('u.*', 'k.name as key_name', 'k.prefix as key_prefix')
      .first()
    if (!row) return response.notFound(i18n.t('portal.usage.detail.not_found'))
    const bodies = await loggedBodies(row.request_id)
    return view.render('pages/portal/usage_show', {
      row,
      bodies,
    })
  }

  /**
   * GET /dashboard/usage/request/:request_id: one of the user's requests by
   * the id its answer carried (x-request-id; the Playground links each answer
   * here), redirected to its page. Not (yet) metered, or another user's: 404.
   */
  async byRequestId({ params, response, auth, i18n }: HttpContext) {
    const user = auth.use('web').getUserOrFail()
    const requestId = String(params.request_id).toLowerCase()
    await settleMetering()
    const row = await db.from('usage_records').where('request_id', requestId).where('user_id', user.id).select('id').first()
    if (!row) return response.notFound(i18n.t('portal.usage.detail.not_found'))
    return response.redirect(`/dashboard/usage/${row.id}`)
  }

  /** GET /dashboard/usage.csv: the same rows (filters applied) as a CSV download. */
  async csv(ctx: HttpContext) {
    const { response, auth } = ctx
    const user = auth.use('web').getUserOrFail()
    const { filters, refused, errors, fieldErrors } = await this.filters(ctx)
    // Refused filters (422): what is wrong, not the rows of filters not applied.
    if (refused) return response.header('content-type', 'text/plain; charset=utf-8').send([...Object.values(fieldErrors), ...errors].join('\n'))
    await settleMetering()
    response.header('content-type', 'text/csv; charset=utf-8')
    response.header('content-disposition', `attachment; filename="usage-${DateTime.utc().toFormat('yyyyLLdd-HHmm')}.csv"`)
    return response.send(await usageCsv(user.id, filters))
  }

  /**
   * Query-string filters, validated. A bad value is reported on the page
   * (status 422; a date's message beside its field, the others above the
   * form) with the values as typed, and nothing is listed; never redirected
   * back to itself.
   */
  private async filters({ request, response, i18n }: HttpContext) {
    const raw = Object.fromEntries(Object.entries(request.qs()).filter(([, v]) => v !== ''))
    let input: Awaited<ReturnType<typeof usageFilterValidator.validate>> = {}
    const errors: string[] = []
    const fieldErrors: Partial<Record<'from' | 'to', string>> = {}
    let refused = false
    try {
      input = await usageFilterValidator.validate(raw, { messagesProvider: i18n.createMessagesProvider() })
    } catch (error) {
      if (!(error instanceof vineErrors.E_VALIDATION_ERROR)) throw error
      for (const { field, message } of error.messages as Array<{ field: string; message: string }>) {
        if (field === 'from' || field === 'to') fieldErrors[field] ??= message
        else errors.push(message)
      }
      refused = true
      response.status(422)
    }
    const day = (d?: Date) => (d ? DateTime.fromJSDate(d).toISODate()! : undefined)
    const filters: UsageFilters = {
      model: input.model,
      keyId: input.key,
      status: input.status,
      tag: input.tag,
      end_user: input.end_user,
      from: day(input.from),
      to: day(input.to),
    }
    const typed = (name: string) => String([raw[name]].flat()[0] ?? '')
    const query = refused
      ? { model: typed('model'), key: typed('key'), status: typed('status'), tag: typed('tag'), end_user: typed('end_user'), from: typed('from'), to: typed('to') }
      : { model: input.model ?? '', key: input.key ?? '', status: input.status ?? '', tag: input.tag ?? '', end_user: input.end_user ?? '', from: filters.from ?? '', to: filters.to ?? '' }
    return { filters, page: input.page ?? 1, query, errors, fieldErrors, refused }
  }
}
