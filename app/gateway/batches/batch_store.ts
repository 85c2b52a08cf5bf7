import { randomBytes } from 'node:crypto'
import db from '@adonisjs/lucid/services/db'
import { GatewayError } from '#exceptions/gateway_error'
import type { Principal } from '#gateway/types'

/** One row of batch_objects (migration 993), as node-pg returns it (numeric columns as strings). */
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
  | 'created_at'
  | 'object'
  | 'request_id'
> & { object: Record<string, any>; hold?: string; request_id?: string | null }

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'

/**
 * The id a client sees: the gateway's own (`file-gw…`, `batch_gw…`, OpenAI's
 * prefixes), 24 random characters, never the upstream's, so two channels that
 * mint the same id (two vLLM servers) cannot collide.
 */
export function mintId(kind: 'file' | 'batch'): string {
  const bytes = randomBytes(24)
  let out = ''
  for (const byte of bytes) out += ALPHABET[byte % ALPHABET.length]
  return `${kind === 'file' ? 'file-gw' : 'batch_gw'}${out}`
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
  const [row] = await db
    .table('batch_objects')
    .insert({ ...values, public_id: mintId(values.kind), object: objectJson(values.object) })
    .returning('*')
  return row as BatchObjectRow
}

/** What a client is told of an object that is not its key's: what OpenAI says of one that does not exist. */
export function notFound(kind: 'file' | 'batch', id: string): GatewayError {
  const shown = id.slice(0, 100)
  const error =
    kind === 'file'
      ? new GatewayError(404, 'not_found', `No such File object: ${shown}`, 'invalid_request_error')
      : new GatewayError(404, 'batch_not_found', `No batch found with id '${shown}'.`, 'invalid_request_error')
  error.param = 'id'
  return error
}

/** The object of that id made through this key (404 in OpenAI's words for any other: another key's is not there for it). */
export async function findOwned(principal: Principal, kind: 'file' | 'batch', publicId: string): Promise<BatchObjectRow> {
  const row = await db
    .from('batch_objects')
    .where({ public_id: publicId, kind, user_id: principal.user.id, api_key_id: principal.key.id })
    .first()
  if (!row) throw notFound(kind, publicId)
  return row as BatchObjectRow
}

export interface ListQuery {
  /** The id of the last object of the previous page (newest first) */
  after?: string
  limit: number
  purpose?: string
}

/** This key's objects of a kind, newest first, one more than `limit` (has_more). */
export async function listOwned(principal: Principal, kind: 'file' | 'batch', query: ListQuery): Promise<BatchObjectRow[]> {
  const rows = db
    .from('batch_objects')
    .where({ kind, user_id: principal.user.id, api_key_id: principal.key.id })
    .orderBy('id', 'desc')
    .limit(query.limit + 1)
  if (query.purpose !== undefined) rows.where('purpose', query.purpose)
  if (query.after !== undefined) {
    rows.where(
      'id',
      '<',
      db.from('batch_objects').where({ public_id: query.after, kind, user_id: principal.user.id, api_key_id: principal.key.id }).select('id')
    )
  }
  return (await rows) as BatchObjectRow[]
}

/** The upstream's latest word on an object. */
export async function recordSeen(id: number, status: string, object: Record<string, any>) {
  await db
    .from('batch_objects')
    .where('id', id)
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
