import type { Catalog } from '#gateway/catalog'
import type { UsageMeter } from '#gateway/metering/usage_meter'
import type { TokenUsage } from '#gateway/types'

/** The columns a billed job's row (batch_objects, videos) has for its usage row: named alike in both tables. */
export interface BilledJobRow {
  request_id: string | null
  user_id: number
  api_key_id: number | null
  team_id: number | string | null
  channel_id: number | null
  served_model: string | null
  created_at: Date
}

/** What the job's bill says: the rest of its usage row. */
export interface JobBill {
  model: string
  endpoint: string
  /** How it ended when it did not complete (`batch_expired`, `video_failed`); null: it did */
  errorCode: string | null
  usage: TokenUsage
  costPico: bigint
  billedAt: Date
  /** The key's budget per model the bill counts on (its name), or null */
  budgetModel: string | null
}

/**
 * A job's one usage row (a batch's, a video's), through the meter like any
 * request's (its request id is unique: never two). Its spend counts where its
 * hold did: the team the key was in when the job was made (TEAM_SPEND_EFFECT),
 * that team's organization now (a job row keeps none: without it a bill never
 * reached the organization's budget, and job after job, each within what it had
 * left, spent without end), the owner's budget in that team when they have
 * limits there now, and the key's budget it was admitted under.
 */
export function recordJobBill(meter: UsageMeter, catalog: Catalog, row: BilledJobRow, bill: JobBill) {
  const channel = row.channel_id === null ? undefined : catalog.channels.find((c) => c.id === row.channel_id)
  const teamId = row.team_id === null ? null : Number(row.team_id)
  const team = teamId === null ? undefined : catalog.teams.get(teamId)
  meter.record({
    requestId: row.request_id!,
    userId: row.user_id,
    apiKeyId: row.api_key_id,
    teamId,
    organizationId: team?.org?.id ?? null,
    memberBudget: team?.members?.has(Number(row.user_id)) === true,
    modelBudget: row.api_key_id === null || bill.budgetModel === null ? null : `${row.api_key_id} ${bill.budgetModel}`,
    channelId: row.channel_id,
    provider: channel?.provider ?? null,
    model: bill.model,
    requestedModel: null,
    servedModel: row.served_model,
    endpoint: bill.endpoint,
    stream: false,
    status: 200,
    errorCode: bill.errorCode,
    usage: bill.usage,
    costPico: bill.costPico,
    latencyMs: Math.max(0, Math.min(bill.billedAt.getTime() - new Date(row.created_at).getTime(), 2_147_483_647)),
    ttftMs: null,
    createdAt: bill.billedAt,
    attemptCount: 1,
    attempts: null,
    tags: null,
  })
}
