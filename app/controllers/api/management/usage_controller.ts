import type { HttpContext } from '@adonisjs/core/http'
import db from '@adonisjs/lucid/services/db'
import { applyFilters, parseFilters, userIdOf } from '#services/usage_query'
import { settleMetering } from '#services/settle_metering'
import { spendByTag } from '#services/tag_spend'
import { spendByEndUser } from '#services/end_user_spend'
import { filterId, keysetPage, managed, money } from '#services/management_api'
import { loggedBodies } from '#services/logged_bodies'
import { GatewayError } from '#exceptions/gateway_error'
import { REQUEST_ID_PATTERN } from '#gateway/metering/request_id'
import { datesOf, usageRangeValidator } from '#validators/usage_period'

/**
 * The usage filters of a query string, `from`/`to` checked first: a day that
 * is not one (`2026-13-45`, `yesterday`) is a 400 naming the parameter, not
 * the default range answered as if it were the one asked for.
 */
async function filtersOf(query: Record<string, unknown>) {
  await managed(() => usageRangeValidator.validate(datesOf(query, ['from', 'to'])))
  return parseFilters(query)
}

/**
 * GET /api/admin/usage: the request log as JSON for billing systems and
 * scripts (LiteLLM's /spend/logs): one object per request, newest first,
 * with the admin Usage page's filters (`user` id or e-mail, `key`, `model`,
 * `channel`, `status` ok|error|HTTP status|error code, `tag`, `from`/`to` UTC days
 * as YYYY-MM-DD, default the last 7, at most a year; a malformed day is a 400) and keyset pages (`?before=`).
 */
export default class ManagementUsageController {
  async index({ request }: HttpContext) {
    const filters = await filtersOf(request.qs())
    const userId = await userIdOf(filters.user)
    const before = filterId(request.input('before'), 'before')
    // Calls that just ended belong in the answer (the meter writes behind).
    await settleMetering()
    const page = await keysetPage(
      (limit) => {
        const query = applyFilters(
          db.from('usage_records as u').select('u.*').orderBy('u.id', 'desc').limit(limit),
          filters,
          userId
        )
        if (before) query.where('u.id', '<', before)
        return query
      },
      usageRecordJson
    )
    return { ...page, from: filters.from, to: filters.to }
  }

  /**
   * GET /api/admin/spend/tags: spend per request tag over a period (LiteLLM's
   * /spend/tags), with the usage filters (`from`/`to` UTC days, the last 7 by
   * default; `user`, `key`, `model`, `channel`, `status`, `tag`): see
   * services/tag_spend.ts.
   */
  async spendByTag({ request }: HttpContext) {
    const filters = await filtersOf(request.qs())
    const userId = await userIdOf(filters.user)
    await settleMetering()
    const data = await spendByTag(filters, userId)
    return { object: 'list', from: filters.from, to: filters.to, data: data.map((r) => ({ ...r, cost: money(r.cost) })) }
  }

  /**
   * GET /api/admin/spend/end-users: spend per end user (the request's `user`)
   * over a period, with the usage filters (`from`/`to`, the last 7 days by
   * default; `user`, `key`, `model`, `channel`, `status`, `tag`, `end_user`):
   * the costliest 100, each with its owner (services/end_user_spend.ts).
   */
  async spendByEndUser({ request }: HttpContext) {
    const filters = await filtersOf(request.qs())
    const userId = await userIdOf(filters.user)
    await settleMetering()
    const data = await spendByEndUser(filters, userId)
    return { object: 'list', from: filters.from, to: filters.to, data: data.map((r) => ({ ...r, cost: money(r.cost) })) }
  }

  /**
   * GET /api/admin/usage/:request_id: one request by the id its answer
   * carried (`x-request-id`, the id a user quotes): its row, every attempt
   * that did not go straight through (channel, status, outcome, error), and
   * the bodies when LOG_BODIES kept them (as sent; `null` otherwise).
   */
  async show({ params }: HttpContext) {
    const requestId = String(params.request_id).toLowerCase()
    if (!REQUEST_ID_PATTERN.test(requestId)) {
      throw GatewayError.invalidRequest('request_id: give the x-request-id of a request (a UUID)', 'invalid_field')
    }
    await settleMetering()
    const record = await db.from('usage_records').where('request_id', requestId).first()
    if (!record) throw new GatewayError(404, 'not_found', `No request "${requestId}" (unknown, or pruned by the retention)`, 'not_found_error')
    const [attempts, bodies] = await Promise.all([
      db.from('request_attempts').where('request_id', requestId).orderBy('attempt'),
      loggedBodies(requestId, true),
    ])
    return {
      ...usageRecordJson(record),
      attempt_log: attempts.map((a: any) => ({
        attempt: a.attempt,
        channel_id: a.channel_id === null ? null : Number(a.channel_id),
        status: a.status,
        outcome: a.outcome,
        error: a.error,
        latency_ms: a.latency_ms,
      })),
      bodies: bodies && {
        request: bodies.request,
        request_truncated: bodies.requestTruncated,
        response: bodies.response,
        response_truncated: bodies.responseTruncated,
      },
    }
  }
}

/** One usage row as the management API answers it (money as exact decimal strings). */
function usageRecordJson(r: any) {
  return {
    id: Number(r.id),
    object: 'usage_record',
    request_id: r.request_id,
    created_at: new Date(r.created_at).toISOString(),
    user_id: Number(r.user_id),
    key_id: r.api_key_id === null ? null : Number(r.api_key_id),
    channel_id: r.channel_id === null ? null : Number(r.channel_id),
    provider: r.provider,
    endpoint: r.endpoint,
    model: r.model,
    requested_model: r.requested_model,
    upstream_model: r.served_model,
    stream: r.stream,
    status: r.status,
    error_code: r.error_code,
    cache_hit: r.cache_hit,
    prompt_tokens: r.prompt_tokens,
    completion_tokens: r.completion_tokens,
    cached_tokens: r.cached_tokens,
    reasoning_tokens: r.reasoning_tokens,
    images: r.images,
    estimated: r.estimated,
    cost: money(r.cost),
    latency_ms: r.latency_ms,
    ttft_ms: r.ttft_ms,
    attempts: r.attempts,
    tags: r.tags ?? null,
    end_user: r.end_user ?? null,
  }
}
