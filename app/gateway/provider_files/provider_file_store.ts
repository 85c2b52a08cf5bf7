import db from '@adonisjs/lucid/services/db'
import type { QueryClientContract } from '@adonisjs/lucid/types/database'
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
/** The prefix of a delete's NOTIFY payload on `gateway_changes` */
const NOTICE = 'provider_files:'
/** Ids one read of `holders` asks for */
const READ_BATCH = 1000

/**
 * The rows of provider_files, and who holds each upstream id, remembered:
 * a generation that names a file or cache (file_pins.ts) reads the table
 * only the first time this instance sees that id. An id no row names is
 * remembered as unknown for a minute (UNKNOWN_MS): a client repeating an id
 * the gateway never recorded (uploaded straight to the provider) costs one
 * read a minute, not one per request. A delete (by its owner, or the
 * sweep's of an expired file or cache) sends `NOTIFY gateway_changes
 * 'provider_files:<kind>:<id>'` in its statement: every instance forgets
 * the id (gateway.ts hands it to forget()) and reads the row again at its
 * next reference, the 404 it now is.
 */
export class ProviderFileStore {
  #holders = new Map<string, FileHolder | number>()

  async insert(values: NewProviderFile): Promise<ProviderFileRow> {
    const [row] = await db
      .table('provider_files')
      .insert(storableRow(values))
      .returning('*')
    if (row.upstream_id !== null) this.#remember(row)
    return row
  }

  /**
   * The holders of many upstream ids at once (a body naming files): those
   * remembered, and the rest in one read per kind by the (kind, upstream_id)
   * index, 1,000 ids a read; an id no row names is absent from the map (and
   * remembered as unknown).
   */
  async holders(refs: ReadonlyArray<{ kind: ProviderFileKind; id: string }>): Promise<Map<string, FileHolder>> {
    const found = new Map<string, FileHolder>()
    const missing = new Map<ProviderFileKind, Set<string>>()
    const now = Date.now()
    for (const { kind, id } of refs) {
      const key = holderKey(kind, id)
      const known = this.#holders.get(key)
      if (typeof known === 'object') found.set(key, known)
      else if (!(typeof known === 'number' && known > now) && !found.has(key)) {
        const ids = missing.get(kind) ?? new Set<string>()
        ids.add(id)
        missing.set(kind, ids)
      }
    }
    for (const [kind, set] of missing) {
      const ids = [...set]
      for (let at = 0; at < ids.length; at += READ_BATCH) {
        const batch = ids.slice(at, at + READ_BATCH)
        // Newest row first: the first seen for an id is its holder.
        const rows = await db
          .from('provider_files')
          .where('kind', kind)
          .whereIn('upstream_id', batch)
          .whereNot('status', 'uploading')
          .orderBy('id', 'desc')
          .select('upstream_id', 'user_id', 'channel_id', 'status')
        for (const row of rows) {
          const key = holderKey(kind, row.upstream_id)
          if (found.has(key)) continue
          const holder = holderOf(row)
          found.set(key, holder)
          rememberBounded(this.#holders, key, holder, REMEMBERED)
        }
        const unknownUntil = Date.now() + UNKNOWN_MS
        for (const id of batch) {
          const key = holderKey(kind, id)
          if (!found.has(key)) rememberBounded(this.#holders, key, unknownUntil, REMEMBERED)
        }
      }
    }
    return found
  }

  /** The owner's row for an upstream id (not deleted), or null: another user's id reads as unknown. */
  async owned(kind: ProviderFileKind, userId: number, upstreamId: string): Promise<ProviderFileRow | null> {
    // No row holds a NUL (Postgres cannot compare one: the query failed, a 400 saying the value cannot be stored)
    if (upstreamId.includes('\0')) return null
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
    await db.from('provider_files').where('id', row.id).update({ object: storableJson(object), expires_at: expiresAt })
  }

  /**
   * Marked deleted (kept for a while: a later reference to the id is still its owner's 404, not another channel's
   * guess; prune_provider_files.ts removes it later). Other instances forget the id (NOTIFY, after commit).
   */
  async markDeleted(row: ProviderFileRow) {
    await db.rawQuery(
      `WITH gone AS (UPDATE provider_files SET status = 'deleted', deleted_at = now(), upload_url = NULL WHERE id = ? RETURNING kind, upstream_id)
       SELECT pg_notify('gateway_changes', 'provider_files:' || kind || ':' || upstream_id) FROM gone WHERE upstream_id IS NOT NULL`,
      [row.id]
    )
    row.status = 'deleted'
    if (row.upstream_id !== null) this.#remember(row)
  }

  /**
   * A resumable upload's row, unless its owner has `cap` uploads in progress
   * already (null then). Counted and inserted under a lock on the owner, so
   * starts at once cannot pass the cap together.
   */
  async insertUpload(values: NewProviderFile, cap: number): Promise<ProviderFileRow | null> {
    return db.transaction(async (trx) => {
      await trx.rawQuery('SELECT pg_advisory_xact_lock(hashtext(?))', [`provider_uploads:${values.user_id}`])
      if ((await this.uploadsInProgress(values.user_id, trx)) >= cap) return null
      const [row] = await trx
        .table('provider_files')
        .insert(storableRow(values))
        .returning('*')
      return row as ProviderFileRow
    })
  }

  /** The owner's resumable uploads in progress (index provider_files_uploading, migration 1053). */
  async uploadsInProgress(userId: number, client: QueryClientContract = db.connection()): Promise<number> {
    const row = await client.from('provider_files').where({ user_id: userId, status: 'uploading' }).count('* as n').first()
    return Number(row?.n ?? 0)
  }

  /** A resumable upload's row by the token in the gateway's upload URL, the caller's only. */
  async uploading(token: string, userId: number): Promise<ProviderFileRow | null> {
    const row = await db.from('provider_files').where({ upload_token: token, user_id: userId, status: 'uploading' }).first()
    return row ?? null
  }

  /** A resumable upload its client cancelled: the row goes (no file came of it), the owner's cap freed at once. */
  async endUpload(row: ProviderFileRow) {
    await db.from('provider_files').where({ id: row.id, status: 'uploading' }).delete()
  }

  /** A resumable upload finished: the upstream's file recorded on its row. */
  async finishUpload(row: ProviderFileRow, upstreamId: string, object: Record<string, any>, bytes: number | null, expiresAt: Date | null) {
    await db.from('provider_files').where('id', row.id).update({
      upstream_id: upstreamId,
      status: 'active',
      upload_url: null,
      upload_token: null,
      bytes,
      object: storableJson(object),
      expires_at: expiresAt,
    })
    Object.assign(row, { upstream_id: upstreamId, status: 'active', upload_url: null, upload_token: null, bytes, object, expires_at: expiresAt })
    this.#remember(row)
  }

  /**
   * A delete's notice, `provider_files:<kind>:<id>` (markDeleted, the sweep;
   * any instance's): the id is forgotten, and read again when next named.
   */
  forgetNotice(payload: string) {
    const at = payload.indexOf(':', NOTICE.length)
    if (!payload.startsWith(NOTICE) || at < 0) return
    this.#holders.delete(holderKey(payload.slice(NOTICE.length, at) as ProviderFileKind, payload.slice(at + 1)))
  }

  /** Forgets every remembered id (tests between files; the change listener back after missing notices). */
  forgetAll() {
    this.#holders.clear()
  }

  #remember(row: ProviderFileRow) {
    rememberBounded(this.#holders, holderKey(row.kind, row.upstream_id!), holderOf(row), REMEMBERED)
  }
}

/**
 * A row as Postgres stores it: no NUL in its text (a `text` column and
 * `jsonb` refuse U+0000, and the insert failed). The upstream's answer
 * echoes what the client sent (an Anthropic part's content type, a Gemini
 * file's displayName): refused there, the file was stored upstream and left
 * unrecorded, nobody's to list or delete.
 */
function storableRow(values: NewProviderFile) {
  return {
    ...values,
    filename: values.filename?.replaceAll('\0', '') ?? null,
    mime_type: values.mime_type?.replaceAll('\0', '') ?? null,
    object: values.object === null ? null : storableJson(values.object),
  }
}

/**
 * JSON for a jsonb column: each escaped NUL (`\u0000`, not an escaped backslash before `u0000`) dropped, and each
 * half of a surrogate pair (JSON.stringify writes only those as `\udXXX` escapes; jsonb refuses them) as U+FFFD.
 */
export function storableJson(value: unknown): string {
  const text = JSON.stringify(value)
  if (!text.includes('\\u')) return text
  return text.replace(/(?<!\\)((?:\\\\)*)\\u(?:0000|(d[89a-f][0-9a-f]{2}))/g, (_, slashes: string, half?: string) => (half ? `${slashes}\\ufffd` : slashes))
}

/** The memory's key for an upstream id of a kind */
export function holderKey(kind: ProviderFileKind, upstreamId: string): string {
  return `${kind}\0${upstreamId}`
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
