import db from '@adonisjs/lucid/services/db'
import { rememberBounded } from '#gateway/bounded_memo'

/** What a row is: Anthropic's Files API, Gemini's Files API, Gemini's cachedContents (migration 1045). */
export type ProviderFileKind = 'anthropic_file' | 'gemini_file' | 'gemini_cache'

/** One row of provider_files, as node-pg returns it (bigints as strings) */
export interface ProviderFileRow {
  id: number | string
  kind: ProviderFileKind
  upstream_id: string | null
  user_id: number | string
  api_key_id: number | string | null
  channel_id: number | string | null
  filename: string | null
  mime_type: string | null
  bytes: number | string | null
  model: string | null
  status: 'uploading' | 'active' | 'deleted'
  upload_token: string | null
  upload_url: string | null
  object: Record<string, any> | null
  expires_at: Date | null
  created_at: Date
  deleted_at: Date | null
}

export type NewProviderFile = Pick<ProviderFileRow, 'kind' | 'upstream_id' | 'filename' | 'mime_type' | 'model' | 'status' | 'object'> & {
  user_id: number
  api_key_id: number | null
  channel_id: number
  bytes: number | null
  upload_token?: string | null
  upload_url?: string | null
  expires_at?: Date | null
}

/** Who holds an upstream id: its owner and the channel it lives on (a deleted one is still its owner's). */
export interface FileHolder {
  userId: number
  channelId: number | null
  deleted: boolean
}

/** Ids remembered (known and unknown alike); past it the oldest go first. */
const REMEMBERED = 50_000
/** An id no row names is looked for again after this long (another instance may have recorded it since). */
const UNKNOWN_MS = 60_000

/**
 * The rows of provider_files, and who holds each upstream id, remembered:
 * a generation that names a file or cache (file_pins.ts) reads the table
 * only the first time this instance sees that id. An id no row names is
 * remembered as unknown for a minute (UNKNOWN_MS): a client repeating an id
 * the gateway never recorded (uploaded straight to the provider) costs one
 * read a minute, not one per request. A delete here updates what is
 * remembered; one on another instance is seen when the entry is pushed out
 * (the holding channel then answers its own 404 for the id).
 */
export class ProviderFileStore {
  #holders = new Map<string, FileHolder | number>()

  async insert(values: NewProviderFile): Promise<ProviderFileRow> {
    const [row] = await db
      .table('provider_files')
      .insert({ ...values, object: values.object === null ? null : JSON.stringify(values.object) })
      .returning('*')
    if (row.upstream_id !== null) this.#remember(row)
    return row
  }

  /** The holder of an upstream id: remembered, else one read by the (kind, upstream_id) index; null when no row names it. */
  async holder(kind: ProviderFileKind, upstreamId: string): Promise<FileHolder | null> {
    const key = `${kind}\0${upstreamId}`
    const known = this.#holders.get(key)
    if (typeof known === 'object') return known
    if (typeof known === 'number' && known > Date.now()) return null
    const row = await db
      .from('provider_files')
      .where({ kind, upstream_id: upstreamId })
      .whereNot('status', 'uploading')
      .orderBy('id', 'desc')
      .select('user_id', 'channel_id', 'status')
      .first()
    if (!row) {
      rememberBounded(this.#holders, key, Date.now() + UNKNOWN_MS, REMEMBERED)
      return null
    }
    const holder = holderOf(row)
    rememberBounded(this.#holders, key, holder, REMEMBERED)
    return holder
  }

  /** The owner's row for an upstream id (not deleted), or null: another user's id reads as unknown. */
  async owned(kind: ProviderFileKind, userId: number, upstreamId: string): Promise<ProviderFileRow | null> {
    const row = await db
      .from('provider_files')
      .where({ kind, upstream_id: upstreamId, user_id: userId, status: 'active' })
      .orderBy('id', 'desc')
      .first()
    return row ?? null
  }

  /**
   * The owner's rows of a kind, newest first: `limit + 1` of them (one more
   * tells there is another page), those older than the row `afterId` names
   * or newer than `beforeId`'s (then still newest first).
   */
  async list(kind: ProviderFileKind, userId: number, limit: number, cursor: { afterId?: string; beforeId?: string } = {}): Promise<ProviderFileRow[]> {
    const query = db.from('provider_files').where({ kind, user_id: userId, status: 'active' })
    const at = cursor.afterId ?? cursor.beforeId
    if (at !== undefined) {
      const anchor = await this.owned(kind, userId, at)
      if (anchor === null) return []
      query.where('id', cursor.afterId !== undefined ? '<' : '>', anchor.id)
    }
    if (cursor.beforeId !== undefined && cursor.afterId === undefined) {
      const rows = await query.orderBy('id', 'asc').limit(limit + 1)
      return rows.reverse()
    }
    return query.orderBy('id', 'desc').limit(limit + 1)
  }

  /** The upstream's newer word on a row (a cache's new expiry, a file's state). */
  async update(row: ProviderFileRow, object: Record<string, any>, expiresAt: Date | null = row.expires_at) {
    row.object = object
    row.expires_at = expiresAt
    await db.from('provider_files').where('id', row.id).update({ object: JSON.stringify(object), expires_at: expiresAt })
  }

  /** Marked deleted (kept: a later reference to the id is still its owner's 404, not another channel's guess). */
  async markDeleted(row: ProviderFileRow) {
    await db.from('provider_files').where('id', row.id).update({ status: 'deleted', deleted_at: new Date(), upload_url: null })
    row.status = 'deleted'
    if (row.upstream_id !== null) this.#remember(row)
  }

  /** A resumable upload's row by the token in the gateway's upload URL, the caller's only. */
  async uploading(token: string, userId: number): Promise<ProviderFileRow | null> {
    const row = await db.from('provider_files').where({ upload_token: token, user_id: userId, status: 'uploading' }).first()
    return row ?? null
  }

  /** A resumable upload finished: the upstream's file recorded on its row. */
  async finishUpload(row: ProviderFileRow, upstreamId: string, object: Record<string, any>, bytes: number | null, expiresAt: Date | null) {
    await db.from('provider_files').where('id', row.id).update({
      upstream_id: upstreamId,
      status: 'active',
      upload_url: null,
      upload_token: null,
      bytes,
      object: JSON.stringify(object),
      expires_at: expiresAt,
    })
    Object.assign(row, { upstream_id: upstreamId, status: 'active', upload_url: null, upload_token: null, bytes, object, expires_at: expiresAt })
    this.#remember(row)
  }

  /** Forgets every remembered id (tests between files; nothing else needs it). */
  forgetAll() {
    this.#holders.clear()
  }

  #remember(row: ProviderFileRow) {
    rememberBounded(this.#holders, `${row.kind}\0${row.upstream_id}`, holderOf(row), REMEMBERED)
  }
}

function holderOf(row: Pick<ProviderFileRow, 'user_id' | 'channel_id' | 'status'>): FileHolder {
  return {
    userId: Number(row.user_id),
    channelId: row.channel_id === null ? null : Number(row.channel_id),
    deleted: row.status === 'deleted',
  }
}

/** The one store (its memory is the process's, as the catalog's). */
export const providerFiles = new ProviderFileStore()
