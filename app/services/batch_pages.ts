import db from '@adonisjs/lucid/services/db'
import { FINISHED_STATUSES } from '#gateway/batches/batch_service'
import { type BatchStatusFilter } from '#services/batch_statuses'
import {
  DELETED_STATUS,
  GEMINI_BATCH_ENDPOINTS,
  isGeminiBatch,
  isGeminiEmbedBatch,
  isMessageBatch,
  MESSAGE_BATCH_ENDPOINT,
  NOT_OPENAI_ENDPOINTS,
  notOpenAiSql,
  type BatchObjectRow,
} from '#gateway/batches/batch_store'

/**
 * What the panel's and the portal's Batches pages read of `batch_objects`
 * (app/gateway/batches/batch_store.ts): the batches (never the files), newest
 * first, in keyset pages on the primary key (?before=<id>, as the usage
 * pages), each with its owner, key and usage row, and the few fields of the
 * stored upstream object a person reads. Never the channel's key or base URL:
 * the upstream object names neither, and its `results_url` (the upstream's
 * address) is not shown.
 */

export const BATCHES_PAGE = 50

/** Which API a batch was made through */
export type BatchKind = 'openai' | 'anthropic' | 'google'

export interface BatchListFilters {
  /** The owner's id (undefined: every owner) */
  userId?: number
  status?: BatchStatusFilter
  kind?: BatchKind
  /** The id of the last batch of the previous page */
  before?: number
  /** A message batch its owner deleted: the panel shows it (its bill is kept), the owner's portal does not, as the API */
  withDeleted: boolean
}

/** One batch as a list row or a detail page shows it */
export interface BatchSummary {
  id: number
  publicId: string
  kind: BatchKind
  /** A batch of embeddings (Gemini's asyncBatchEmbedContent), not of generations */
  embeddings: boolean
  userId: number
  ownerEmail: string | null
  apiKeyId: number | null
  keyName: string | null
  keyPrefix: string | null
  channelId: number | null
  channelName: string | null
  model: string | null
  servedModel: string | null
  status: string
  /** Request counts the upstream last reported, by its own names (null: none reported yet) */
  counts: Array<{ name: string; value: number }> | null
  createdAt: Date
  /** When the upstream says the batch ended (null: not yet, or it did not say) */
  endedAt: Date | null
  /** USD held on the balance while it is not billed (null once billed) */
  held: string | null
  billedAt: Date | null
  billedCost: string | null
  /** The usage row of its bill (null: not billed, or pruned by the retention) */
  usageId: number | null
  /** Not billed, not ended, no cancel asked yet: a cancel can still stop it */
  cancellable: boolean
}

/** The rows of a page (one more than BATCHES_PAGE: there is a next page) */
export async function batchPage(filters: BatchListFilters): Promise<{ batches: BatchSummary[]; next: number | null }> {
  const query = summaryQuery().orderBy('b.id', 'desc').limit(BATCHES_PAGE + 1)
  if (filters.userId !== undefined) query.where('b.user_id', filters.userId)
  if (filters.kind === 'anthropic') query.where('b.endpoint', MESSAGE_BATCH_ENDPOINT)
  if (filters.kind === 'google') query.whereIn('b.endpoint', GEMINI_BATCH_ENDPOINTS as string[])
  if (filters.kind === 'openai') query.whereRaw(notOpenAiSql('b.endpoint'), NOT_OPENAI_ENDPOINTS as string[])
  if (filters.status === 'running') query.whereNull('b.billed_at')
  else if (filters.status === 'billed') query.whereNotNull('b.billed_at')
  else if (filters.status) query.where('b.status', filters.status)
  if (!filters.withDeleted) query.whereNot('b.status', DELETED_STATUS)
  if (filters.before !== undefined) query.where('b.id', '<', filters.before)
  const rows = await query
  const batches = rows.slice(0, BATCHES_PAGE).map(summaryOf)
  return { batches, next: rows.length > BATCHES_PAGE ? batches[batches.length - 1].id : null }
}

/** One batch (by its row id) with its summary and its stored row; null when there is no such batch (a file's id included). */
export async function findBatch(id: number): Promise<{ summary: BatchSummary; row: BatchObjectRow } | null> {
  const row = await summaryQuery().select('b.*').where('b.id', id).first()
  if (!row) return null
  return { summary: summaryOf(row), row: row as BatchObjectRow }
}

function summaryQuery() {
  return db
    .from('batch_objects as b')
    .leftJoin('users as o', 'o.id', 'b.user_id')
    .leftJoin('api_keys as k', 'k.id', 'b.api_key_id')
    .leftJoin('channels as c', 'c.id', 'b.channel_id')
    // request_id is unique in usage_records: at most one row, found through its index
    .leftJoin('usage_records as u', 'u.request_id', 'b.request_id')
    .where('b.kind', 'batch')
    .select(
      'b.id',
      'b.public_id',
      'b.kind',
      'b.endpoint',
      'b.user_id',
      'b.api_key_id',
      'b.channel_id',
      'b.model',
      'b.served_model',
      'b.status',
      'b.object',
      'b.hold',
      'b.billed_at',
      'b.billed_cost',
      'b.created_at'
    )
    .select('o.email as owner_email', 'k.name as key_name', 'k.prefix as key_prefix', 'c.name as channel_name', 'u.id as usage_id')
}

/** OpenAI's request_counts, then Anthropic's, in the order a person reads them */
const COUNT_NAMES = ['total', 'completed', 'failed', 'processing', 'succeeded', 'errored', 'canceled', 'expired']

/** The timestamps OpenAI sets when a batch ends (unix seconds) */
const OPENAI_END_FIELDS = ['completed_at', 'failed_at', 'expired_at', 'cancelled_at']

function summaryOf(row: Record<string, any>): BatchSummary {
  const object: Record<string, any> = row.object ?? {}
  const billed = row.billed_at !== null
  if (isGeminiBatch(row as BatchObjectRow)) return rowSummary(row, billed, geminiPartsOf(row, object, billed))
  const anthropic = isMessageBatch(row as BatchObjectRow)
  return rowSummary(row, billed, {
    kind: anthropic ? 'anthropic' : 'openai',
    counts: countsOf(object.request_counts),
    endedAt: anthropic ? dateOf(object.ended_at) : (OPENAI_END_FIELDS.map((f) => dateOf(object[f])).find((d) => d !== null) ?? null),
    cancellable: !billed && isRunning(row.status, anthropic, object),
  })
}

/** What a batch's kind decides in its summary; the rest is the row's (rowSummary) */
type KindParts = Pick<BatchSummary, 'kind' | 'counts' | 'endedAt' | 'cancellable'>

/** A summary of the row's own columns, whatever the kind, with the kind's parts */
function rowSummary(row: Record<string, any>, billed: boolean, parts: KindParts): BatchSummary {
  return {
    id: Number(row.id),
    publicId: row.public_id,
    kind: parts.kind,
    embeddings: isGeminiEmbedBatch(row as BatchObjectRow),
    userId: Number(row.user_id),
    ownerEmail: row.owner_email ?? null,
    apiKeyId: row.api_key_id === null ? null : Number(row.api_key_id),
    keyName: row.key_name ?? null,
    keyPrefix: row.key_prefix ?? null,
    channelId: row.channel_id === null ? null : Number(row.channel_id),
    channelName: row.channel_name ?? null,
    model: row.model,
    servedModel: row.served_model,
    status: row.status,
    counts: parts.counts,
    createdAt: row.created_at,
    endedAt: parts.endedAt,
    held: billed ? null : String(row.hold),
    billedAt: row.billed_at,
    billedCost: billed ? String(row.billed_cost ?? '0') : null,
    usageId: row.usage_id === null || row.usage_id === undefined ? null : Number(row.usage_id),
    cancellable: parts.cancellable,
  }
}

/** Gemini's batch: its Operation's metadata (`state`, `batchStats` counts as strings, `endTime`) */
function geminiPartsOf(row: Record<string, any>, object: Record<string, any>, billed: boolean): KindParts {
  const metadata = object.metadata !== null && typeof object.metadata === 'object' ? object.metadata : {}
  const stats = metadata.batchStats !== null && typeof metadata.batchStats === 'object' ? metadata.batchStats : {}
  const counts = Object.entries(stats)
    .map(([name, value]) => ({ name: name.replace(/RequestCount$/, '').replace(/^requestCount$/, 'total'), value: Number(value) }))
    .filter((count) => Number.isFinite(count.value))
  return {
    kind: 'google',
    counts: counts.length > 0 ? counts : null,
    endedAt: dateOf(metadata.endTime),
    cancellable: !billed && (row.status === 'BATCH_STATE_PENDING' || row.status === 'BATCH_STATE_RUNNING'),
  }
}

/** Still running upstream and no cancel asked: OpenAI's validating / in_progress / finalizing, Anthropic's in_progress without cancel_initiated_at */
function isRunning(status: string, anthropic: boolean, object: Record<string, any>): boolean {
  if (anthropic) return status === 'in_progress' && !object.cancel_initiated_at
  return !FINISHED_STATUSES.has(status) && status !== 'cancelling' && status !== 'channel_deleted'
}

function countsOf(value: unknown): BatchSummary['counts'] {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return null
  const counts = value as Record<string, unknown>
  const out = COUNT_NAMES.filter((name) => typeof counts[name] === 'number' && Number.isFinite(counts[name])).map((name) => ({
    name,
    value: counts[name] as number,
  }))
  return out.length ? out : null
}

/** An upstream time: unix seconds (OpenAI) or an RFC 3339 string (Anthropic); null for anything else */
export function dateOf(value: unknown): Date | null {
  let date: Date
  if (typeof value === 'number' && Number.isFinite(value) && value > 0) date = new Date(value * 1000)
  else if (typeof value === 'string' && value !== '') date = new Date(value)
  else return null
  // Unix seconds past what a Date holds (1e20) make an Invalid Date, which the portal's Intl formatting throws on.
  return Number.isNaN(date.getTime()) ? null : date
}

/**
 * The stored upstream object's fields a detail page shows, by name, each
 * time as a Date; only these (the upstream's own `results_url` is its
 * address, never shown; metadata is the client's own strings).
 */
const DETAIL_FIELDS = [
  'id',
  'status',
  'processing_status',
  'endpoint',
  'completion_window',
  'created_at',
  'in_progress_at',
  'finalizing_at',
  'completed_at',
  'failed_at',
  'expired_at',
  'expires_at',
  'cancelling_at',
  'cancelled_at',
  'cancel_initiated_at',
  'ended_at',
  'archived_at',
]

const TIME_FIELDS = new Set(['created_at', 'in_progress_at', 'finalizing_at', 'completed_at', 'failed_at', 'expired_at', 'expires_at', 'cancelling_at', 'cancelled_at', 'cancel_initiated_at', 'ended_at', 'archived_at'])

export interface UpstreamDetail {
  fields: Array<{ name: string; value: string | Date }>
  /** OpenAI's validation errors ({code, message, line}), at most 20 */
  errors: Array<{ code: string; message: string; line: string }>
  metadata: Array<{ name: string; value: string }>
}

export function upstreamDetail(object: Record<string, any> | null): UpstreamDetail {
  const source = object ?? {}
  const fields: UpstreamDetail['fields'] = []
  for (const name of DETAIL_FIELDS) {
    const value = source[name]
    if (value === null || value === undefined || value === '') continue
    if (TIME_FIELDS.has(name)) {
      const date = dateOf(value)
      if (date) fields.push({ name, value: date })
    } else if (typeof value === 'string' || typeof value === 'number') {
      fields.push({ name, value: String(value).slice(0, 200) })
    }
  }
  const list = Array.isArray(source.errors?.data) ? [...source.errors.data] : []
  // A Gemini batch that failed whole: its Operation's `error` ({code, message})
  if (source.error !== null && typeof source.error === 'object' && !Array.isArray(source.error)) list.push(source.error)
  const errors = list.slice(0, 20).map((e: any) => ({
    code: String(e?.code ?? '').slice(0, 100),
    message: String(e?.message ?? '').slice(0, 500),
    line: e?.line === null || e?.line === undefined ? '' : String(e.line).slice(0, 12),
  }))
  const meta = source.metadata && typeof source.metadata === 'object' && !Array.isArray(source.metadata) ? source.metadata : {}
  const metadata = Object.entries(meta)
    .slice(0, 16)
    // Gemini's metadata holds objects (batchStats, output): shown as JSON, not [object Object]
    .map(([name, value]) => ({ name: name.slice(0, 64), value: (value !== null && typeof value === 'object' ? JSON.stringify(value) : String(value)).slice(0, 512) }))
  return { fields, errors, metadata }
}
