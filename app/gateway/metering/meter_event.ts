import type { TokenUsage } from '#gateway/types'
import type { AttemptRecord } from '#gateway/upstream/dispatcher'

/** Everything the metering transaction writes for one request. */
export interface MeterEvent {
  requestId: string
  userId: number
  apiKeyId: number | null
  channelId: number | null
  provider: string | null
  /** Model the client asked for */
  model: string
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
}
