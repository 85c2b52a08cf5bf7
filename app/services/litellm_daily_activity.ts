import { fromPico, toPico } from '#gateway/metering/money'
import type { OrganizationDaySpend } from '#services/usage_rollup'

/**
 * LiteLLM's daily activity answer (SpendAnalyticsPaginatedResponse, as
 * /organization/daily/activity gives it): per UTC day its metrics, broken
 * down by model and by entity (here the organization, with its alias), and
 * the totals of the whole range in `metadata`. A page is `pageSize` days.
 * Spend is added as exact decimals, then answered as a number (LiteLLM's
 * float). Cache tokens, providers and keys are not in the rollup: 0 and {}.
 */
interface Metrics {
  spend: number
  prompt_tokens: number
  completion_tokens: number
  cache_read_input_tokens: number
  cache_creation_input_tokens: number
  total_tokens: number
  successful_requests: number
  failed_requests: number
  api_requests: number
}

class Sum {
  spend = 0n
  prompt = 0
  completion = 0
  requests = 0
  errors = 0

  add(row: OrganizationDaySpend) {
    this.spend += toPico(row.cost)
    this.prompt += row.inputTokens
    this.completion += row.outputTokens
    this.requests += row.requests
    this.errors += row.errors
  }

  json(): Metrics {
    return {
      spend: Number(fromPico(this.spend)),
      prompt_tokens: this.prompt,
      completion_tokens: this.completion,
      cache_read_input_tokens: 0,
      cache_creation_input_tokens: 0,
      total_tokens: this.prompt + this.completion,
      successful_requests: this.requests - this.errors,
      failed_requests: this.errors,
      api_requests: this.requests,
    }
  }
}

interface Day {
  total: Sum
  models: Map<string, Sum>
  entities: Map<number, { alias: string; sum: Sum }>
}

export function organizationDailyActivityJson(rows: OrganizationDaySpend[], page: number, pageSize: number) {
  const days = new Map<string, Day>()
  const total = new Sum()
  for (const row of rows) {
    let day = days.get(row.day)
    if (!day) days.set(row.day, (day = { total: new Sum(), models: new Map(), entities: new Map() }))
    day.total.add(row)
    total.add(row)
    let model = day.models.get(row.model)
    if (!model) day.models.set(row.model, (model = new Sum()))
    model.add(row)
    let entity = day.entities.get(row.organizationId)
    if (!entity) day.entities.set(row.organizationId, (entity = { alias: row.alias, sum: new Sum() }))
    entity.sum.add(row)
  }
  const all = [...days]
  const totalPages = Math.max(1, Math.ceil(all.length / pageSize))
  const results = all.slice((page - 1) * pageSize, page * pageSize).map(([date, day]) => ({
    date,
    metrics: day.total.json(),
    breakdown: {
      models: Object.fromEntries([...day.models].map(([name, sum]) => [name, { metrics: sum.json(), metadata: {} }])),
      model_groups: {},
      mcp_servers: {},
      providers: {},
      api_keys: {},
      entities: Object.fromEntries(
        [...day.entities].map(([id, entity]) => [String(id), { metrics: entity.sum.json(), metadata: { organization_alias: entity.alias } }])
      ),
    },
  }))
  const metrics = total.json()
  return {
    results,
    metadata: {
      total_spend: metrics.spend,
      total_prompt_tokens: metrics.prompt_tokens,
      total_completion_tokens: metrics.completion_tokens,
      total_tokens: metrics.total_tokens,
      total_api_requests: metrics.api_requests,
      total_successful_requests: metrics.successful_requests,
      total_failed_requests: metrics.failed_requests,
      total_cache_read_input_tokens: 0,
      total_cache_creation_input_tokens: 0,
      page,
      total_pages: totalPages,
      has_more: page < totalPages,
    },
  }
}
