/**
 * The statuses a batch row of `batch_objects` can have (OpenAI's, Anthropic's,
 * Gemini's and the gateway's own two), and the Batches pages' status filters. Apart
 * from batch_pages.ts so the validators read them without loading the
 * database or the gateway.
 */
export const BATCH_STATUSES = [
  'validating',
  'in_progress',
  'finalizing',
  'cancelling',
  'completed',
  'failed',
  'expired',
  'cancelled',
  'canceling',
  'ended',
  // Gemini's batch states
  'BATCH_STATE_PENDING',
  'BATCH_STATE_RUNNING',
  'BATCH_STATE_SUCCEEDED',
  'BATCH_STATE_FAILED',
  'BATCH_STATE_CANCELLED',
  'BATCH_STATE_EXPIRED',
  // The sweep's close of a batch whose channel was deleted (batch_service.ts sweep)
  'channel_deleted',
  // A message batch its owner deleted (batch_store.ts DELETED_STATUS)
  'deleted',
] as const

/** A status filter: a status, or `running` (not billed yet) / `billed` */
export const BATCH_STATUS_FILTERS = ['running', 'billed', ...BATCH_STATUSES] as const

export type BatchStatusFilter = (typeof BATCH_STATUS_FILTERS)[number]
