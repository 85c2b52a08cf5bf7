import { GatewayError } from '#exceptions/gateway_error'
import { wholeNumber } from '#gateway/http/whole_number'
import type { BatchObjectRow } from '#gateway/batches/batch_store'

export interface ListParams {
  after?: string
  limit: number
  purpose?: string
}

/**
 * A list call's query (`after`, `limit`, files' `purpose`) as OpenAI takes
 * it: limit 1 to `max`, `defaultLimit` when absent.
 */
export function listParams(query: Record<string, unknown>, defaultLimit: number, max: number): ListParams {
  const params: ListParams = { limit: defaultLimit }
  const limit = query.limit
  if (limit !== undefined) {
    const n = wholeNumber(limit)
    if (!Number.isInteger(n) || n < 1 || n > max) {
      throw GatewayError.invalidRequest(`limit must be an integer from 1 to ${max}`, 'invalid_value', 'limit')
    }
    params.limit = n
  }
  if (typeof query.after === 'string' && query.after !== '') params.after = query.after.slice(0, 64)
  if (typeof query.purpose === 'string' && query.purpose !== '') params.purpose = query.purpose.slice(0, 32)
  return params
}

/** OpenAI's list page: `data`, `first_id`, `last_id`, `has_more` (the rows hold one more than the page when there is more). */
export function listPage(rows: BatchObjectRow[], limit: number, view: (row: BatchObjectRow) => Record<string, any>) {
  const page = rows.slice(0, limit)
  const data = page.map(view)
  return {
    object: 'list',
    data,
    first_id: data[0]?.id ?? null,
    last_id: data[data.length - 1]?.id ?? null,
    has_more: rows.length > limit,
  }
}
