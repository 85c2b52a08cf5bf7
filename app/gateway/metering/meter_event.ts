import type { TokenUsage } from '#gateway/types'
import type { AttemptRecord } from '#gateway/upstream/dispatcher'

/** Everything the metering transaction writes for one request. */
export interface MeterEvent {
  requestId: string
  userId: number
  apiKeyId: number | null
  channelId: number | null
  provider: string | null
  /** Model billed: the one the client asked for, or the fallback model that answered */
  model: string
  /** Model the client asked for, only when a fallback model is `model` (else null: the usual row) */
  requestedModel: string | null
  /** Model name sent upstream */
  servedModel: string | null
  endpoint: string
  stream: boolean
  /** HTTP status the client received (499: client closed the connection) */
  status: number
  errorCode: string | null
  usage: TokenUsage
  /** pico-USD */
  costPico: bigint
  latencyMs: number
  ttftMs: number | null
  createdAt: Date
  /** Upstream attempts made (0 when rejected before routing) */
  attemptCount: number
  /** Kept only when the path was not a single clean attempt (for the admin's "why") */
  attempts: AttemptRecord[] | null
  /** Answered from the response cache (no provider call; tokens and cost 0) */
  cacheHit?: boolean
  /** Cost-attribution tags (request_tags.ts: no commas in a tag); null or absent when untagged */
  tags?: string[] | null
  /** The end user the request named (end_users/end_user_id.ts); null or absent when none */
  endUser?: string | null
  /** The key's team when the call was admitted (its budget counts the cost); null or absent when none */
  teamId?: number | null
  /** The team's organization when the call was admitted (its budget counts the cost); null or absent when none */
  organizationId?: number | null
  /** Admitted under the key owner's limits in its team (teams/member_policies.ts): the member's spend there counts the cost */
  memberBudget?: boolean
  /** The key's budget for the model asked for (`${keyId} ${model}`, limits/model_budgets.ts) the call was admitted under; null or absent when none */
  modelBudget?: string | null
}
