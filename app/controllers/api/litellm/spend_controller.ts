import type { HttpContext } from '@adonisjs/core/http'
import vine from '@vinejs/vine'
import { wholeNumberField } from '#validators/whole_number_field'
import db from '@adonisjs/lucid/services/db'
import { findApiKey } from '#actions/revoke_api_key'
import { applyFilters, parseFilters, userIdOf } from '#services/usage_query'
import { settleMetering } from '#services/settle_metering'
import { datesOf, litellmRangeValidator } from '#validators/usage_period'
import { REQUEST_ID_PATTERN } from '#gateway/metering/request_id'
import { fieldError, litellmManaged } from '#services/litellm_management'
import { spendByTag } from '#services/tag_spend'

/** Rows one answer holds by default, and at most (`page_size`) */
const DEFAULT_ROWS = 100
const MAX_ROWS = 1000

const pageValidator = vine.compile(
  vine.object({
    page_size: wholeNumberField().min(1).max(MAX_ROWS).optional(),
    // A row id is exact as a JS number up to 15 digits (record_id.ts): a larger one is refused here, not by Postgres.
    before: wholeNumberField().min(1).max(999_999_999_999_999).optional(),
  })
)

/**
 * GET /spend/logs: LiteLLM's spend logs over the usage rows, newest first:
 * `api_key` (a token, i.e. our key id, a key or its prefix), `user_id` (id
 * or e-mail), `request_id`, `start_date`/`end_date` (UTC days, YYYY-MM-DD;
 * the last 7 by default, at most a year, as /api/admin/usage), `page_size`
 * rows (100, at most 1,000); the `x-next-before` header, when more rows
 * match, is the `before` that asks for the next ones. Every read is a date
 * range on the usage table's indexes with a LIMIT.
 */
export default class LiteLLMSpendController {
  async logs(ctx: HttpContext) {
    return litellmManaged(async () => {
      const qs = ctx.request.qs()
      const { page_size: pageSize = DEFAULT_ROWS, before } = await pageValidator.validate({ page_size: qs.page_size, before: qs.before })
      const dates = { from: qs.start_date, to: qs.end_date }
      await litellmRangeValidator.validate(datesOf(dates, ['from', 'to']))
      let keyId = ''
      if (qs.api_key !== undefined && qs.api_key !== '') keyId = String((await findApiKey(String(qs.api_key))).id)
      const filters = parseFilters({ ...dates, user: qs.user_id, key: keyId })
      const userId = await userIdOf(filters.user)
      await settleMetering()
      if (qs.request_id !== undefined && qs.request_id !== '') {
        const requestId = String(qs.request_id).toLowerCase()
        if (!REQUEST_ID_PATTERN.test(requestId)) throw fieldError('request_id', 'give the x-request-id of a request (a UUID)')
        const rows = await db.from('usage_records').where('request_id', requestId).limit(1)
        return rows.map(spendLogJson)
      }
      const query = applyFilters(db.from('usage_records as u').select('u.*').orderBy('u.id', 'desc').limit(pageSize + 1), filters, userId)
      if (before) query.where('u.id', '<', before)
      const rows = await query
      const page = rows.slice(0, pageSize)
      if (rows.length > pageSize) ctx.response.header('x-next-before', String(page[page.length - 1].id))
      return page.map(spendLogJson)
    })
  }

  /**
   * GET /spend/tags[?start_date=&end_date=]: spend per request tag as LiteLLM
   * answers it, `[{individual_request_tag, log_count, total_spend}]`, the
   * costliest first, over the spend-per-tag report of /api/admin/spend/tags
   * (daily rollups for finished days). UTC days; the last 7 by default, at
   * most a year. Untagged requests are not a tag (LiteLLM leaves them out).
   */
  async tags(ctx: HttpContext) {
    return litellmManaged(async () => {
      const qs = ctx.request.qs()
      const dates = { from: qs.start_date, to: qs.end_date }
      await litellmRangeValidator.validate(datesOf(dates, ['from', 'to']))
      await settleMetering()
      const rows = await spendByTag(parseFilters(dates), null)
      return rows
        .filter((r) => r.tag !== null)
        .map((r) => ({ individual_request_tag: r.tag, log_count: r.requests, total_spend: Number(r.cost) }))
    })
  }
}

/**
 * One usage row as LiteLLM's SpendLogs row: `api_key` is the key's token
 * (our key id), `user` the user id, `team_id` the team the request was made
 * under, `spend` the row's exact cost as a number,
 * `startTime` when the request came in, `endTime` when it ended.
 */
function spendLogJson(r: any) {
  const start = new Date(r.created_at)
  const at = (ms: number | null) => (ms === null || ms === undefined ? null : new Date(start.getTime() + Number(ms)).toISOString())
  return {
    request_id: r.request_id,
    call_type: r.endpoint,
    api_key: r.api_key_id === null ? null : String(r.api_key_id),
    spend: Number(r.cost),
    total_tokens: Number(r.prompt_tokens ?? 0) + Number(r.completion_tokens ?? 0),
    prompt_tokens: Number(r.prompt_tokens ?? 0),
    completion_tokens: Number(r.completion_tokens ?? 0),
    startTime: start.toISOString(),
    endTime: at(r.latency_ms ?? 0),
    completionStartTime: at(r.ttft_ms),
    model: r.model,
    model_group: r.requested_model ?? r.model,
    model_id: r.channel_id === null ? null : String(r.channel_id),
    custom_llm_provider: r.provider,
    user: String(r.user_id),
    // The team the request was admitted under (LiteLLM's team_id: our id as text), null for none.
    team_id: r.team_id === null || r.team_id === undefined ? null : String(r.team_id),
    cache_hit: String(!!r.cache_hit),
    request_tags: r.tags ?? [],
    status: r.status < 400 ? 'success' : 'failure',
    metadata: {
      status: r.status,
      error_code: r.error_code,
      upstream_model: r.served_model,
      stream: r.stream,
      cached_tokens: r.cached_tokens,
      reasoning_tokens: r.reasoning_tokens,
      attempts: r.attempts,
      estimated: r.estimated,
      cost: String(r.cost),
    },
  }
}
