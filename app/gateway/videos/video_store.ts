import { randomBytes } from 'node:crypto'
import db from '@adonisjs/lucid/services/db'
import { GatewayError } from '#exceptions/gateway_error'
import { storable } from '#gateway/batches/batch_store'

/**
 * How a video was asked for: OpenAI's Videos API relayed to an OpenAI-wire
 * channel (`openai`), OpenAI's Videos API made by Veo (`veo`), or a Gemini
 * client's own `:predictLongRunning` (`veo_native`).
 */
export type VideoWire = 'openai' | 'veo' | 'veo_native'

/** One row of `videos` (migration 1044), as node-pg returns it (bigint and numeric columns as strings). */
export interface VideoRow {
  id: number
  public_id: string
  upstream_id: string
  wire: VideoWire
  user_id: number
  api_key_id: number | null
  team_id: number | string | null
  budget_model: string | null
  channel_id: number | null
  model: string
  served_model: string | null
  seconds: number
  samples: number
  size: string | null
  /** queued, in_progress, completed, failed (and, billed without a video, expired or deleted) */
  status: string
  /** What the client is answered from: OpenAI's video object (openai, veo) or the operation (veo_native), as last seen */
  object: Record<string, any> | null
  remixed_from: string | null
  request_id: string
  hold: string
  billed_at: Date | null
  billed_cost: string | null
  billed_seconds: number | null
  created_at: Date
}

export type NewVideo = Omit<VideoRow, 'id' | 'public_id' | 'billed_at' | 'billed_cost' | 'billed_seconds' | 'created_at'>

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'

/**
 * The id a client sees: `video_gw…` (OpenAI's prefix) for the Videos API,
 * `vop_gw…` for a Gemini client's operation; never the upstream's, so two
 * channels minting the same id cannot collide.
 */
export function mintVideoId(wire: VideoWire): string {
  let out = ''
  for (const byte of randomBytes(24)) out += ALPHABET[byte % ALPHABET.length]
  return `${wire === 'veo_native' ? 'vop_gw' : 'video_gw'}${out}`
}

const TERMINAL = new Set(['completed', 'failed', 'expired', 'deleted'])

export function finished(status: string): boolean {
  return TERMINAL.has(status)
}

export function readRow(row: any): VideoRow {
  row.id = Number(row.id)
  row.user_id = Number(row.user_id)
  if (row.api_key_id !== null) row.api_key_id = Number(row.api_key_id)
  if (row.channel_id !== null) row.channel_id = Number(row.channel_id)
  return row as VideoRow
}

export async function insertVideo(values: NewVideo): Promise<VideoRow> {
  const [row] = await db
    .table('videos')
    .insert({ ...values, status: String(values.status).slice(0, 32), public_id: mintVideoId(values.wire), object: JSON.stringify(storable(values.object ?? {})) })
    .returning('*')
  return readRow(row)
}

/** What OpenAI answers of a video that is not there (another user's is not there for this one). */
export function videoNotFound(id: string): GatewayError {
  const error = new GatewayError(404, 'video_not_found', `Video with id '${id.slice(0, 100)}' not found.`, 'invalid_request_error')
  error.param = 'video_id'
  return error
}

/** The user's video of that id (404 for any other: another user's is not there for them). */
export async function findOwned(userId: number, publicId: string, notFound = videoNotFound): Promise<VideoRow> {
  if (publicId.includes('\0') || publicId.length > 64) throw notFound(publicId)
  const row = await db.from('videos').where({ public_id: publicId, user_id: userId }).whereNot('status', 'deleted').first()
  if (!row) throw notFound(publicId)
  return readRow(row)
}

export interface VideoListQuery {
  after: string | null
  limit: number
  order: 'asc' | 'desc'
}

/** The user's videos of the Videos API (Gemini clients' operations apart), one more than `limit` (has_more). */
export async function listOwned(userId: number, query: VideoListQuery): Promise<VideoRow[]> {
  const rows = db
    .from('videos')
    .where('user_id', userId)
    .whereIn('wire', ['openai', 'veo'])
    .whereNot('status', 'deleted')
    .orderBy('id', query.order)
    .limit(query.limit + 1)
  if (query.after !== null) {
    // A cursor that names none of the user's videos gives an empty page.
    if (query.after.includes('\0')) return []
    const at = db.from('videos').where({ user_id: userId, public_id: query.after }).select('id')
    rows.where('id', query.order === 'desc' ? '<' : '>', at)
  }
  return (await rows).map(readRow)
}

/** The upstream's latest word on a video (its object as the client sees it). */
export async function recordSeen(id: number, status: string, object: Record<string, any>) {
  await db
    .from('videos')
    .where('id', id)
    .whereNull('billed_at')
    .update({ status: status.slice(0, 32), object: JSON.stringify(storable(object)), updated_at: new Date() })
}

/**
 * Marks the video billed, with how it ended: true for the one caller whose
 * UPDATE found it unbilled (the row lock makes a concurrent one wait, then
 * find billed_at set): only that caller writes its usage row.
 */
export async function claimBilling(
  id: number,
  status: string,
  object: Record<string, any> | null,
  cost: string,
  billedAt: Date,
  seconds = 0
): Promise<boolean> {
  const values: Record<string, unknown> = { status: status.slice(0, 32), billed_at: billedAt, billed_cost: cost, billed_seconds: seconds, updated_at: billedAt }
  if (object !== null) values.object = JSON.stringify(storable(object))
  const updated = await db.from('videos').where('id', id).whereNull('billed_at').update(values).returning('id')
  return updated.length === 1
}

/**
 * Unbilled videos due for a look, claimed for this sweep (polled_at set now:
 * another instance's sweep skips them, and a locked row is skipped, not
 * waited for). A video is looked at more seldom as it ages: every tenth of
 * its age, from 5 s to 2 min.
 */
export async function claimDue(limit: number): Promise<VideoRow[]> {
  const result = await db.rawQuery(
    `UPDATE videos SET polled_at = now() WHERE id IN (
       SELECT id FROM videos
        WHERE billed_at IS NULL
          AND (polled_at IS NULL OR polled_at < now() - make_interval(secs => LEAST(120, GREATEST(5, EXTRACT(EPOCH FROM now() - created_at) / 10))))
        ORDER BY polled_at NULLS FIRST, id
        LIMIT ? FOR UPDATE SKIP LOCKED)
     RETURNING *`,
    [limit]
  )
  return result.rows.map(readRow)
}

/** A video its owner deleted: kept for its bill (a billed one) or gone. */
export async function markDeleted(id: number) {
  await db.from('videos').where('id', id).update({ status: 'deleted', updated_at: new Date() })
}

/**
 * Videos billed between `olderThanMs` and two days ago whose usage row is
 * not in the table: the claim committed and the process ended before the
 * meter wrote the row (its flush window). Two days: long before the
 * retention prune could have taken the row.
 */
export async function billsWithoutRow(olderThanMs: number, limit: number): Promise<VideoRow[]> {
  const result = await db.rawQuery(
    `SELECT v.* FROM videos v
      WHERE v.billed_at IS NOT NULL
        AND v.billed_at < now() - make_interval(secs => ?) AND v.billed_at > now() - interval '2 days'
        AND NOT EXISTS (SELECT 1 FROM usage_records u WHERE u.request_id = v.request_id)
      ORDER BY v.billed_at LIMIT ?`,
    [olderThanMs / 1000, limit]
  )
  return result.rows.map(readRow)
}
