import { randomBytes } from 'node:crypto'
import db from '@adonisjs/lucid/services/db'
import { GatewayError } from '#exceptions/gateway_error'

/** Items one conversation holds at most (a list is read in pages; its input whole) */
export const MAX_CONVERSATION_ITEMS = 10_000

export interface ConversationRow {
  id: string
  userId: number
  metadata: Record<string, string>
  items: number
  bytes: number
  createdAt: Date
}

export interface StoredItem {
  id: string
  position: number
  item: Record<string, any>
}

export interface ConversationStoreOptions {
  /** Days a conversation is kept after its last write (RESPONSES_STORE_DAYS; 0: conversations off) */
  days: number
  /** Bytes of items one conversation holds at most: what a request's input may carry (BODY_LIMIT_GENERATION_MB) */
  maxBytes: number
  log: (message: string) => void
}

/**
 * The Conversations API's rows (migration 1035): conversations of a user and
 * their items in order. Items are appended in one statement that moves the
 * conversation's counters under its row lock (its only lock: nothing else is
 * locked with it) and refuses to pass the bounds. A Responses request that
 * names a conversation appends its input and output once answered
 * (`appendLater`); a read of that conversation on this instance waits for it,
 * so an agent's next turn sees its last one.
 */
export class ConversationStore {
  #pending = new Map<string, Promise<void>>()

  constructor(readonly options: ConversationStoreOptions) {}

  get enabled(): boolean {
    return this.options.days > 0
  }

  async create(userId: number, metadata: Record<string, string>, items: Record<string, any>[]): Promise<ConversationRow> {
    const id = `conv_${randomBytes(24).toString('hex')}`
    const prepared = prepareItems(items)
    const bytes = prepared.reduce((sum, p) => sum + p.bytes, 0)
    if (bytes > this.options.maxBytes) throw tooLarge()
    await db.transaction(async (trx) => {
      await trx.rawQuery(
        `INSERT INTO conversations (id, user_id, metadata, next_position, items, bytes, expires_at)
         VALUES (?, ?, ?, ?, ?, ?, now() + make_interval(days => ?))`,
        [id, userId, JSON.stringify(metadata), prepared.length, prepared.length, bytes, this.options.days]
      )
      if (prepared.length > 0) await trx.rawQuery(INSERT_ITEMS_SQL, [id, 0, prepared.map((p) => p.id), prepared.map((p) => p.json), prepared.map((p) => p.bytes)])
    })
    return { id, userId, metadata, items: prepared.length, bytes, createdAt: new Date() }
  }

  async find(id: string, userId: number): Promise<ConversationRow | null> {
    if (!mayExist(id)) return null
    const rows = await db.rawQuery('SELECT * FROM conversations WHERE id = ? AND user_id = ? AND expires_at > now()', [id, userId])
    const row = rows.rows[0]
    return row ? fromRow(row) : null
  }

  async updateMetadata(id: string, userId: number, metadata: Record<string, string>): Promise<ConversationRow | null> {
    if (!mayExist(id)) return null
    const rows = await db.rawQuery(
      'UPDATE conversations SET metadata = ? WHERE id = ? AND user_id = ? AND expires_at > now() RETURNING *',
      [JSON.stringify(metadata), id, userId]
    )
    return rows.rows[0] ? fromRow(rows.rows[0]) : null
  }

  async delete(id: string, userId: number): Promise<boolean> {
    if (!mayExist(id)) return false
    await this.#settled(id)
    const rows = await db.rawQuery('DELETE FROM conversations WHERE id = ? AND user_id = ? RETURNING id', [id, userId])
    return rows.rows.length > 0
  }

  /**
   * Appends items (ids given where they have none); null when the
   * conversation is not this user's or expired. Past the bounds: the 400, nothing added.
   */
  async append(id: string, userId: number, items: Record<string, any>[]): Promise<StoredItem[] | null> {
    if (!mayExist(id)) return null
    const prepared = prepareItems(items)
    const bytes = prepared.reduce((sum, p) => sum + p.bytes, 0)
    const rows = await db.rawQuery(
      `WITH c AS (
         UPDATE conversations SET next_position = next_position + ?, items = items + ?, bytes = bytes + ?,
                expires_at = now() + make_interval(days => ?)
          WHERE id = ? AND user_id = ? AND expires_at > now() AND bytes + ? <= ? AND items + ? <= ?
         RETURNING id, next_position - ? AS first
       )
       INSERT INTO conversation_items (conversation_id, position, id, item, bytes)
       SELECT c.id, c.first + x.n - 1, x.id, x.item, x.bytes
         FROM c, unnest(?::text[], ?::jsonb[], ?::int[]) WITH ORDINALITY AS x(id, item, bytes, n)
       RETURNING position, id, item`,
      [
        prepared.length, prepared.length, bytes, this.options.days,
        id, userId, bytes, this.options.maxBytes, prepared.length, MAX_CONVERSATION_ITEMS,
        prepared.length,
        prepared.map((p) => p.id), prepared.map((p) => p.json), prepared.map((p) => p.bytes),
      ]
    )
    if (rows.rows.length === 0) {
      if ((await this.find(id, userId)) === null) return null
      throw tooLarge()
    }
    return rows.rows.map(fromItemRow).sort((a: StoredItem, b: StoredItem) => a.position - b.position)
  }

  /**
   * Appends a Responses turn's input and output behind its answer: a failure is
   * logged (the client has its answer); a read of the conversation here waits for it.
   */
  appendLater(id: string, userId: number, items: Record<string, any>[]) {
    const before = this.#pending.get(id) ?? Promise.resolve()
    const work = before
      .then(() => this.append(id, userId, items))
      .then(
        (added) => {
          if (added === null) this.options.log(`conversations: ${id} is gone; a response's items were not added`)
        },
        (error) => this.options.log(`conversations: a response's items could not be added to ${id}: ${error instanceof Error ? error.message : String(error)}`)
      )
      .finally(() => {
        if (this.#pending.get(id) === work) this.#pending.delete(id)
      })
    this.#pending.set(id, work)
  }

  /** Waits for this instance's appends to the conversation (a turn's items) */
  async #settled(id: string) {
    const pending = this.#pending.get(id)
    if (pending !== undefined) await pending
  }

  /** Every item, oldest first, for a Responses request's input (null: not this user's, or expired) */
  async input(id: string, userId: number): Promise<Record<string, any>[] | null> {
    if (!mayExist(id)) return null
    await this.#settled(id)
    const rows = await db.rawQuery(
      `SELECT i.item FROM conversations c JOIN conversation_items i ON i.conversation_id = c.id
        WHERE c.id = ? AND c.user_id = ? AND c.expires_at > now() ORDER BY i.position`,
      [id, userId]
    )
    if (rows.rows.length === 0 && (await this.find(id, userId)) === null) return null
    return rows.rows.map((r: any) => r.item)
  }

  /** A page of items: `limit` + 1 read, so has_more needs no count */
  async list(id: string, userId: number, params: { limit: number; order: 'asc' | 'desc'; after: string | null }): Promise<{ items: StoredItem[]; hasMore: boolean } | null> {
    if ((await this.find(id, userId)) === null) return null
    // A cursor no item can have is as an unknown one: nothing after it.
    if (params.after !== null && !mayBeItem(params.after)) return { items: [], hasMore: false }
    await this.#settled(id)
    const direction = params.order === 'asc' ? 'ASC' : 'DESC'
    const compare = params.order === 'asc' ? '>' : '<'
    const bindings: unknown[] = [id]
    let after = ''
    if (params.after !== null) {
      after = `AND position ${compare} coalesce((SELECT position FROM conversation_items WHERE conversation_id = ? AND id = ? ORDER BY position DESC LIMIT 1), ${params.order === 'asc' ? "'9223372036854775807'" : '-1'})`
      bindings.push(id, params.after)
    }
    bindings.push(params.limit + 1)
    const rows = await db.rawQuery(`SELECT position, id, item FROM conversation_items WHERE conversation_id = ? ${after} ORDER BY position ${direction} LIMIT ?`, bindings)
    const items = rows.rows.map(fromItemRow)
    return { items: items.slice(0, params.limit), hasMore: items.length > params.limit }
  }

  async item(id: string, userId: number, itemId: string): Promise<StoredItem | null> {
    if ((await this.find(id, userId)) === null || !mayBeItem(itemId)) return null
    await this.#settled(id)
    const rows = await db.rawQuery('SELECT position, id, item FROM conversation_items WHERE conversation_id = ? AND id = ? ORDER BY position DESC LIMIT 1', [id, itemId])
    return rows.rows[0] ? fromItemRow(rows.rows[0]) : null
  }

  /** Deletes one item (the latest of that id); false when there was none. The counters move under the conversation's lock. */
  async deleteItem(id: string, userId: number, itemId: string): Promise<boolean> {
    if (!mayExist(id) || !mayBeItem(itemId)) return false
    await this.#settled(id)
    const rows = await db.rawQuery(
      `WITH c AS (SELECT id FROM conversations WHERE id = ? AND user_id = ? AND expires_at > now() FOR UPDATE),
       gone AS (
         DELETE FROM conversation_items i USING c
          WHERE i.conversation_id = c.id
            AND i.position = (SELECT position FROM conversation_items WHERE conversation_id = c.id AND id = ? ORDER BY position DESC LIMIT 1)
         RETURNING i.bytes
       )
       UPDATE conversations SET items = items - (SELECT count(*) FROM gone), bytes = bytes - coalesce((SELECT sum(bytes) FROM gone), 0)
        WHERE id IN (SELECT id FROM c) AND EXISTS (SELECT 1 FROM gone)
       RETURNING id`,
      [id, userId, itemId]
    )
    return rows.rows.length > 0
  }
}

/** Rows inserted in one statement from three arrays (ids, items, sizes), positions from `?` on */
const INSERT_ITEMS_SQL = `
INSERT INTO conversation_items (conversation_id, position, id, item, bytes)
SELECT ?, ? + x.n - 1, x.id, x.item, x.bytes FROM unnest(?::text[], ?::jsonb[], ?::int[]) WITH ORDINALITY AS x(id, item, bytes, n)`

/**
 * Items as a conversation keeps them: an id (the client's, else one made
 * here: `msg_` for a message, else `item_`, and 48 hex characters), a
 * message's type and its text as a content part, as OpenAI lists them.
 * Serialised once here (the size counted is those bytes).
 */
function prepareItems(items: Record<string, any>[]): Array<{ id: string; json: string; bytes: number }> {
  return items.map((raw) => {
    const item: Record<string, any> = { ...raw }
    item.type ??= 'message'
    if (item.type === 'message' && typeof item.content === 'string') {
      item.content = [{ type: item.role === 'assistant' ? 'output_text' : 'input_text', text: item.content }]
    }
    if (typeof item.id !== 'string' || item.id === '' || item.id.length > 128) {
      item.id = `${item.type === 'message' ? 'msg' : 'item'}_${randomBytes(24).toString('hex')}`
    }
    // Read in the values, not the JSON: an item whose text says `\u0000` (code, an escape explained) was refused.
    if (unstorable(item)) throw GatewayError.invalidRequest('items must not contain NUL characters or lone surrogates', 'invalid_value', 'items')
    const json = JSON.stringify(item)
    return { id: item.id, json, bytes: Buffer.byteLength(json) }
  })
}

/** Ours are `conv_` and short ASCII: another id is unknown without a read */
function mayExist(id: string): boolean {
  return id.length <= 64 && /^[\w-]+$/.test(id)
}

/**
 * Could an item have this id (a path's or an `after` cursor's)? Kept ones are
 * at most 128 characters and storable: another is unknown without a read (a
 * NUL reached Postgres, whose refusal was the generic 400 naming nothing).
 */
function mayBeItem(id: string): boolean {
  return id.length <= 128 && !id.includes('\u0000') && id.isWellFormed()
}

/** Text jsonb cannot hold, anywhere in an item (values and names): a NUL, a lone surrogate. Depth: the body's (MAX_JSON_DEPTH). */
function unstorable(value: unknown): boolean {
  if (typeof value === 'string') return value.includes('\u0000') || !value.isWellFormed()
  if (value === null || typeof value !== 'object') return false
  if (Array.isArray(value)) return value.some(unstorable)
  for (const key in value) {
    if (unstorable(key) || unstorable((value as Record<string, unknown>)[key])) return true
  }
  return false
}

function tooLarge(): GatewayError {
  return GatewayError.invalidRequest(
    `A conversation holds at most ${MAX_CONVERSATION_ITEMS} items and as many bytes as a request's input may carry; start a new one`,
    'conversation_too_large',
    'items'
  )
}

function fromRow(row: any): ConversationRow {
  return {
    id: row.id,
    userId: Number(row.user_id),
    metadata: row.metadata ?? {},
    items: Number(row.items),
    bytes: Number(row.bytes),
    createdAt: new Date(row.created_at),
  }
}

function fromItemRow(row: any): StoredItem {
  return { id: row.id, position: Number(row.position), item: row.item }
}
