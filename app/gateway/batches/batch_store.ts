import { randomBytes } from 'node:crypto'
import db from '@adonisjs/lucid/services/db'
import type { DatabaseQueryBuilderContract } from '@adonisjs/lucid/types/querybuilder'
import { GatewayError } from '#exceptions/gateway_error'
import type { Principal } from '#gateway/types'

/**
 * A batch row's `endpoint` when it is one of Anthropic's Message Batches
 * (message_batches_api.ts) rather than OpenAI's Batch API: the same table,
 * holds, bill and sweep, told apart by the endpoint its requests call.
 */
export const MESSAGE_BATCH_ENDPOINT = '/v1/messages'

/**
 * A batch row's `endpoint` when it is one of Gemini's batches
 * (gemini_batches_api.ts, `models/{m}:batchGenerateContent` on a google
 * channel): the same table, holds, bill and sweep.
 */
export const GEMINI_BATCH_ENDPOINT = 'batchGenerateContent'

/**
 * ...and when it is one of Gemini's embedding batches (`models/{m}:asyncBatchEmbedContent`,
 * @google/genai `batches.createEmbeddings`): the same Batch API resource (`batches/…`), get, list,
 * cancel and delete, billed from its embeddings (batch_output.ts sumGeminiEmbeddings).
 */
export const GEMINI_EMBED_BATCH_ENDPOINT = 'asyncBatchEmbedContent'

/** Both of Gemini's batch endpoints: one kind to a client (`batches/…`), the row's endpoint telling them apart */
export const GEMINI_BATCH_ENDPOINTS: readonly string[] = [GEMINI_BATCH_ENDPOINT, GEMINI_EMBED_BATCH_ENDPOINT]

/** A message batch its owner deleted: kept for its bill's figures (repairBills), never shown again. */
export const DELETED_STATUS = 'deleted'

/** What a client names: a file, one of OpenAI's batches, one of Anthropic's message batches, or one of Gemini's batches. */
export type ObjectKind = 'file' | 'batch' | 'message_batch' | 'gemini_batch'

export function isMessageBatch(row: Pick<BatchObjectRow, 'kind' | 'endpoint'>): boolean {
  return row.kind === 'batch' && row.endpoint === MESSAGE_BATCH_ENDPOINT
}

/** The endpoints that are not OpenAI's Batch API (whose rows' endpoint is the lines' URL, or none) */
export const NOT_OPENAI_ENDPOINTS: readonly string[] = [MESSAGE_BATCH_ENDPOINT, ...GEMINI_BATCH_ENDPOINTS]

/** An OpenAI batch's condition on `{alias}.endpoint` (bound to NOT_OPENAI_ENDPOINTS): none of the other APIs' */
export function notOpenAiSql(column: string): string {
  return NOT_OPENAI_ENDPOINTS.map(() => `${column} IS DISTINCT FROM ?`).join(' AND ')
}

/** One of Gemini's batches, of either endpoint (generateContent's or embeddings') */
export function isGeminiBatch(row: Pick<BatchObjectRow, 'kind' | 'endpoint'>): boolean {
  return row.kind === 'batch' && (row.endpoint === GEMINI_BATCH_ENDPOINT || row.endpoint === GEMINI_EMBED_BATCH_ENDPOINT)
}

export function isGeminiEmbedBatch(row: Pick<BatchObjectRow, 'kind' | 'endpoint'>): boolean {
  return row.kind === 'batch' && row.endpoint === GEMINI_EMBED_BATCH_ENDPOINT
}

/** One row of batch_objects (migrations 993, 1000), as node-pg returns it (numeric columns as strings). */
export interface BatchObjectRow {
  id: number
  kind: 'file' | 'batch'
  public_id: string
  upstream_id: string
  user_id: number
  api_key_id: number | null
  channel_id: number | null
  model: string | null
  served_model: string | null
  purpose: string | null
  endpoint: string | null
  filename: string | null
  bytes: number | null
  lines: number | null
  completion_hold: number | null
  /** A batch file's web searches and spoken-answer tokens, for its batches' hold (migration 1034; null: none) */
  search_hold: number | null
  audio_hold: number | null
  /** Of its completion hold, the tokens that may be images (migration 1040; null: none) */
  image_hold: number | null
  /** Those tokens when the image output price is the higher: one image per choice at least (migration 1049; null: image_hold) */
  image_answer_hold: number | null
  input_file_id: string | null
  status: string
  object: Record<string, any> | null
  request_id: string | null
  hold: string
  billed_at: Date | null
  billed_cost: string | null
  prompt_tokens: number | null
  completion_tokens: number | null
  cached_tokens: number | null
  reasoning_tokens: number | null
  cache_write_tokens: number | null
  /** The bill's tokens are (partly) the gateway's count, not the upstream's (migration 1052: its usage row's mark) */
  estimated: boolean
  /** The team the creating key was in (migration 1013): its budget holds and its spend counts the batch; null: none */
  team_id: number | string | null
  /** The key's budget per model it was admitted under, by its own name (migration 1021: batch_holds.ts batchBudgetOf); null: none */
  budget_model: string | null
  created_at: Date
}

export type NewBatchObject = Omit<
  BatchObjectRow,
  | 'id'
  | 'public_id'
  | 'hold'
  | 'billed_at'
  | 'billed_cost'
  | 'prompt_tokens'
  | 'completion_tokens'
  | 'cached_tokens'
  | 'reasoning_tokens'
  | 'cache_write_tokens'
  | 'estimated'
  | 'created_at'
  | 'object'
  | 'request_id'
  | 'team_id'
  | 'budget_model'
  | 'search_hold'
  | 'audio_hold'
  | 'image_hold'
  | 'image_answer_hold'
> & {
  object: Record<string, any>
  hold?: string
  request_id?: string | null
  team_id?: number | null
  budget_model?: string | null
  search_hold?: number | null
  audio_hold?: number | null
  image_hold?: number | null
  image_answer_hold?: number | null
  /** The requests' custom ids (custom_ids.ts): given, or copied from the input file of that row id */
  customIds?: { digests: Buffer } | { fromObject: number }
  /** An embedding batch's requests' estimated input tokens (embed_tokens.ts), kept for its bill (batch_input_tokens) */
  inputTokens?: Buffer
}

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'

/** Gemini's batch names are `batches/{id}` (the SDK refuses any other): the gateway's are `batches/gw…` */
const ID_PREFIXES: Record<ObjectKind, string> = { file: 'file-gw', batch: 'batch_gw', message_batch: 'msgbatch_gw', gemini_batch: 'batches/gw' }

/**
 * The id a client sees: the gateway's own (`file-gw…`, `batch_gw…`, OpenAI's
 * prefixes; `msgbatch_gw…`, Anthropic's), 24 random characters, never the
 * upstream's, so two channels that mint the same id (two vLLM servers) cannot
 * collide.
 */
export function mintId(kind: ObjectKind): string {
  const bytes = randomBytes(24)
  let out = ''
  for (const byte of bytes) out += ALPHABET[byte % ALPHABET.length]
  return `${ID_PREFIXES[kind]}${out}`
}

/**
 * An upstream's object as jsonb keeps it: without NUL characters, which
 * jsonb refuses (an upstream echoing a client's bytes, a hostile proxy).
 * Refused, the object would never be stored: a batch not recorded runs
 * upstream unbilled, a finished one is never billed.
 */
export function storable(value: unknown): unknown {
  if (typeof value === 'string') return value.includes('\0') ? value.replaceAll('\0', '') : value
  if (value === null || typeof value !== 'object') return value
  if (Array.isArray(value)) return value.map(storable)
  const out: Record<string, unknown> = {}
  for (const [name, item] of Object.entries(value)) out[storable(name) as string] = storable(item)
  return out
}

function objectJson(object: Record<string, any>): string {
  const text = JSON.stringify(object)
  // JSON.stringify writes a NUL as this escape: the walk is only for the rare object that has one.
  return text.includes('\\u0000') ? JSON.stringify(storable(object)) : text
}

export async function insertObject(values: NewBatchObject): Promise<BatchObjectRow> {
  const kind: ObjectKind = isMessageBatch(values) ? 'message_batch' : isGeminiBatch(values) ? 'gemini_batch' : values.kind
  const { customIds, inputTokens, ...columns } = values
  try {
    // One transaction: a batch is never recorded without the ids its bill counts by.
    return await db.transaction(async (trx) => {
      const [row] = await trx
        .table('batch_objects')
        // The status is the upstream's word: cut to its column as recordSeen does (a longer one failed the insert after
        // the upstream had made the object, which was then never recorded, held or billed).
        .insert({ ...columns, status: storable(String(values.status).slice(0, 32)), public_id: mintId(kind), object: objectJson(values.object) })
        .returning('*')
      if (customIds !== undefined && 'digests' in customIds) {
        await trx.table('batch_custom_ids').insert({ object_id: row.id, digests: customIds.digests })
      } else if (customIds !== undefined) {
        await trx.rawQuery('INSERT INTO batch_custom_ids (object_id, digests) SELECT ?, digests FROM batch_custom_ids WHERE object_id = ?', [
          row.id,
          customIds.fromObject,
        ])
      }
      if (inputTokens !== undefined) await trx.table('batch_input_tokens').insert({ object_id: row.id, counts: inputTokens })
      return row as BatchObjectRow
    })
  } catch (error: any) {
    // An upstream that answers a create with the id of an object already here (its mistake, or a proxy's): the
    // upstream's fault in the client's words, not an unexpected 500; the first object stays as it was.
    if (error?.code === '23505' && error?.constraint === 'batch_objects_upstream') {
      throw GatewayError.providerError(`The upstream answered with the id of an object the gateway has already (${String(values.upstream_id).slice(0, 100)})`)
    }
    throw error
  }
}

/** What a client is told of an object that is not its key's: what OpenAI (or Anthropic) says of one that does not exist. */
export function notFound(kind: ObjectKind, id: string): GatewayError {
  const shown = id.slice(0, 100)
  if (kind === 'message_batch') return new GatewayError(404, 'not_found', `No message batch found with id '${shown}'`, 'not_found_error')
  // Rendered in Google's shape (NOT_FOUND) under /v1beta
  if (kind === 'gemini_batch') return new GatewayError(404, 'not_found', `Batch ${shown} not found`, 'not_found_error')
  const error =
    kind === 'file'
      ? new GatewayError(404, 'not_found', `No such File object: ${shown}`, 'invalid_request_error')
      : new GatewayError(404, 'batch_not_found', `No batch found with id '${shown}'.`, 'invalid_request_error')
  error.param = 'id'
  return error
}

/** The rows of a kind: OpenAI's batches, Anthropic's message batches and Gemini's batches share `kind = 'batch'`, told apart by endpoint. */
function ofKind(query: DatabaseQueryBuilderContract<any>, kind: ObjectKind): DatabaseQueryBuilderContract<any> {
  if (kind === 'file') return query.where('kind', 'file')
  query.where('kind', 'batch')
  if (kind === 'batch') return query.whereRaw(notOpenAiSql('endpoint'), NOT_OPENAI_ENDPOINTS as string[])
  if (kind === 'message_batch') query.where('endpoint', MESSAGE_BATCH_ENDPOINT)
  else query.whereIn('endpoint', GEMINI_BATCH_ENDPOINTS as string[])
  return query.whereNot('status', DELETED_STATUS)
}

/** The object of that id made through this key (404 in OpenAI's or Anthropic's words for any other: another key's is not there for it). */
export async function findOwned(principal: Principal, kind: ObjectKind, publicId: string): Promise<BatchObjectRow> {
  // No id holds a NUL (text refuses it): one that does names nothing, and Postgres would refuse the query as bad input
  if (publicId.includes('\0')) throw notFound(kind, publicId)
  const row = await ofKind(db.from('batch_objects').where({ public_id: publicId, user_id: principal.user.id, api_key_id: principal.key.id }), kind).first()
  if (!row) throw notFound(kind, publicId)
  return row as BatchObjectRow
}

export interface ListQuery {
  /** The id of the last object of the previous page (newest first): the page of older ones */
  after?: string
  /** The id of the first object of the next page (Anthropic's before_id): the page of newer ones */
  before?: string
  limit: number
  purpose?: string
}

/**
 * This key's objects of a kind, one more than `limit` (has_more): newest
 * first, or with `before` the ones just newer than it, oldest first (the
 * caller turns the page around).
 */
export async function listOwned(principal: Principal, kind: ObjectKind, query: ListQuery): Promise<BatchObjectRow[]> {
  const owner = { user_id: principal.user.id, api_key_id: principal.key.id }
  const rows = ofKind(db.from('batch_objects').where(owner), kind)
    .orderBy('id', query.before === undefined ? 'desc' : 'asc')
    .limit(query.limit + 1)
  if (query.purpose !== undefined) rows.where('purpose', query.purpose)
  const cursor = query.before ?? query.after
  // A cursor that names no object gives an empty page; one with a NUL names none (and Postgres would refuse it)
  if (cursor?.includes('\0')) return []
  if (cursor !== undefined) {
    const at = ofKind(db.from('batch_objects').where({ ...owner, public_id: cursor }), kind).select('id')
    rows.where('id', query.before === undefined ? '<' : '>', at)
  }
  return (await rows) as BatchObjectRow[]
}

/** A message batch its owner deleted (kept for its bill's figures; gone for every look). */
export async function markDeleted(id: number) {
  await db.from('batch_objects').where('id', id).update({ status: DELETED_STATUS, updated_at: new Date() })
}

/**
 * The upstream's latest word on an object; none on one its owner deleted (a
 * look whose answer came back after the delete put a deleted batch back in
 * its lists and gets).
 */
export async function recordSeen(id: number, status: string, object: Record<string, any>) {
  await db
    .from('batch_objects')
    .where('id', id)
    .whereNot('status', DELETED_STATUS)
    .update({ status: storable(status.slice(0, 32)), object: objectJson(object), updated_at: new Date(), polled_at: new Date() })
}

export async function deleteObject(id: number) {
  await db.from('batch_objects').where('id', id).delete()
}

/**
 * A file the upstream made for a batch (its output or error file) as the
 * batch owner's, under a gateway id: made once, whoever sees it first.
 */
export async function registerBatchFile(batch: BatchObjectRow, upstreamId: string, purpose: string): Promise<string> {
  const inserted = await db.rawQuery(
    `INSERT INTO batch_objects (kind, public_id, upstream_id, user_id, api_key_id, channel_id, model, served_model, purpose, endpoint, status, object)
     VALUES ('file', ?, ?, ?, ?, ?, ?, ?, ?, ?, 'processed', ?)
     ON CONFLICT (channel_id, kind, upstream_id) DO NOTHING
     RETURNING public_id`,
    [
      mintId('file'),
      upstreamId,
      batch.user_id,
      batch.api_key_id,
      batch.channel_id,
      batch.model,
      batch.served_model,
      purpose,
      batch.endpoint,
      JSON.stringify({ object: 'file', purpose }),
    ]
  )
  if (inserted.rows[0]) return inserted.rows[0].public_id
  const row = await db.from('batch_objects').where({ channel_id: batch.channel_id, kind: 'file', upstream_id: upstreamId }).select('public_id').first()
  return row.public_id
}

/** The custom ids a batch was created with (custom_ids.ts), or null for one created before they were kept. */
export async function storedCustomIds(id: number): Promise<Buffer | null> {
  const row = await db.from('batch_custom_ids').where('object_id', id).select('digests').first()
  return row ? (row.digests as Buffer) : null
}

/** An embedding batch's requests' estimated input tokens (embed_tokens.ts), or null when none were kept. */
export async function storedInputTokens(id: number): Promise<Buffer | null> {
  const row = await db.from('batch_input_tokens').where('object_id', id).select('counts').first()
  return row ? (row.counts as Buffer) : null
}

/** Unbilled batches, those polled longest ago first (the sweep). */
export async function unbilledBatches(limit: number): Promise<BatchObjectRow[]> {
  return (await db
    .from('batch_objects')
    .where('kind', 'batch')
    .whereNull('billed_at')
    .orderByRaw('polled_at ASC NULLS FIRST, id ASC')
    .limit(limit)) as BatchObjectRow[]
}

export interface BilledFigures {
  /** How the batch ended (its last status) */
  status: string
  billedAt: Date
  cost: string
  promptTokens: number
  completionTokens: number
  cachedTokens: number
  reasoningTokens: number
  cacheWriteTokens: number
  /** The usage row is marked estimated (an embedding batch billed the gateway's count) */
  estimated: boolean
}

/**
 * Marks the batch billed: true for the one caller whose UPDATE found it
 * unbilled (the row lock makes a concurrent one wait, then find billed_at
 * set). Only that caller writes the usage row.
 */
export async function claimBilling(id: number, figures: BilledFigures): Promise<boolean> {
  const updated = await db
    .from('batch_objects')
    .where('id', id)
    .whereNull('billed_at')
    .update({
      status: figures.status.slice(0, 32),
      billed_at: figures.billedAt,
      billed_cost: figures.cost,
      prompt_tokens: figures.promptTokens,
      completion_tokens: figures.completionTokens,
      cached_tokens: figures.cachedTokens,
      reasoning_tokens: figures.reasoningTokens,
      cache_write_tokens: figures.cacheWriteTokens,
      estimated: figures.estimated,
      updated_at: figures.billedAt,
    })
    .returning('id')
  return updated.length === 1
}

/**
 * Batches billed between `olderThanMs` and two days ago whose usage row is
 * not in the table: the claim committed and the process ended before the
 * meter wrote the row (its flush window). Two days: long before the
 * retention prune (31 days at least) could have taken the row.
 */
export async function billsWithoutRow(olderThanMs: number, limit: number): Promise<BatchObjectRow[]> {
  const result = await db.rawQuery(
    `SELECT b.* FROM batch_objects b
      WHERE b.kind = 'batch' AND b.billed_at IS NOT NULL
        AND b.billed_at < now() - make_interval(secs => ?) AND b.billed_at > now() - interval '2 days'
        AND NOT EXISTS (SELECT 1 FROM usage_records u WHERE u.request_id = b.request_id)
      ORDER BY b.billed_at LIMIT ?`,
    [olderThanMs / 1000, limit]
  )
  return result.rows as BatchObjectRow[]
}
