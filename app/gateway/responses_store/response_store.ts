import db from '@adonisjs/lucid/services/db'
import { instructionsFromColumn, instructionsText, itemsFromColumn, itemsJson } from '#gateway/responses_store/stored_items_json'

/**
 * One stored Responses answer (table stored_responses, migration 1004).
 * 'gateway': answered on a translated channel, the conversation kept here;
 * 'upstream': answered by a Responses-native channel, which keeps it (only
 * the channel that holds it is known here).
 */
export interface StoredResponse {
  id: string
  kind: 'gateway' | 'upstream'
  userId: number
  apiKeyId: number | null
  channelId: number | null
  model: string
  previousResponseId: string | null
  /** The request's own input items (a string input as one user message) */
  inputItems: unknown[] | null
  instructions: string | null
  outputItems: unknown[] | null
  /** Responses' usage object */
  usage: Record<string, unknown> | null
  status: string
  /** Created with `background: true` (responses_store/background_runs.ts): may be cancelled, its row written again when it ends */
  background?: boolean
  /** A background run of the gateway: the instance running it (background_sweeper.ts), and how it failed */
  instanceId?: string | null
  error?: Record<string, unknown> | null
  createdAt: Date
  expiresAt: Date
}

/** A background response still running: its row says so until it ends (never kept in #recent: another instance ends it) */
export function unfinished(status: string): boolean {
  return status === 'queued' || status === 'in_progress'
}

export interface ResponseStoreOptions {
  /** Days a stored response is kept (RESPONSES_STORE_DAYS; 0: nothing is stored) */
  days: number
  /** Largest input + output JSON of one response kept, bytes (RESPONSES_STORE_MAX_KB) */
  maxBytes: number
  log: (message: string) => void
  /** Rows per INSERT (default 200) and wait before a write (default 10 ms: the answers of a burst go in one) */
  batchSize?: number
  flushMs?: number
  /** Bytes of items the queue holds at most (default 64 MB): a database that hangs does not take the memory */
  maxQueuedBytes?: number
}

/**
 * A user's latest gateway-kept responses whose inputs are searched for an item
 * id that names no response (item_references.ts): a client's own ids. Their
 * outputs need no search (the ids the gateway mints name their response).
 * Bounded: an id nobody holds here (an upstream's) is searched for on every
 * request that sends it.
 */
export const ITEM_SEARCH_DEPTH = 100

/** Responses of a chain read for one follow-up at most (`previous_response_chain_too_long` beyond) */
export const MAX_CHAIN = 256

/** Where each Responses-native answer is held, remembered without a read (id -> owner, channel) */
const STICKY_ENTRIES = 50_000

/** Bytes of items of the gateway-kept responses remembered (a conversation's next turn reads them without the table) */
const RECENT_BYTES = 32 * 1024 * 1024

/** A queued row: its JSON serialised once, when it was saved (the bound is checked on those bytes) */
interface PendingRow {
  record: StoredResponse
  input: string | null
  output: string | null
  bytes: number
  /** Its input and output items' JSON, what a follow-up's body carries of it (not its instructions) */
  itemBytes: number
}

/** A response remembered in memory, with what memory counts it at and its items' size in a follow-up's body */
interface RecentEntry {
  record: StoredResponse
  bytes: number
  itemBytes: number
}

/**
 * What a follow-up reads of a conversation: the responses newest first, and
 * `tooLarge` when their items alone passed the size asked for (the walk
 * stopped there: the rest was not read).
 */
export interface Chain {
  owner: boolean
  responses: StoredResponse[]
  tooLarge?: boolean
  /** The responses' items, in bytes at least (what the follow-up's body will carry of them) */
  itemBytes: number
}

/**
 * The stored responses: written behind the answer (save() queues; a timer
 * writes the queue in one INSERT), read on a follow-up or a GET. A queued
 * response is found before it reaches the table (a follow-up that comes
 * right after its answer). A failed write is logged and dropped: the client
 * already has its answer, and a later previous_response_id to it is a
 * not-found.
 */
export class ResponseStore {
  #pending = new Map<string, PendingRow>()
  #pendingBytes = 0
  /** The queue was full and an answer was not stored: logged once, until a write empties it */
  #overflowLogged = false
  /** Rows lost since writes began to fail whole (an outage: logged once, then counted) */
  #lostInOutage = 0
  /** Rows of the INSERT under way */
  #writing = new Set<string>()
  /**
   * Deleted while their INSERT was under way: it may still land them, so they
   * are deleted again once it is over, and read as gone until then.
   */
  #tombstones = new Set<string>()
  #timer: NodeJS.Timeout | null = null
  #flushing: Promise<void> | null = null
  /** Responses-native answers: id -> where it is held (an insertion-ordered Map: the oldest go first) */
  #sticky = new Map<string, { userId: number; channelId: number | null }>()
  /**
   * Gateway-kept responses saved or read lately, least recently used out
   * first beyond RECENT_BYTES: an agent's next turn names the response this
   * instance just answered, and reads its conversation from here. A delete
   * (here, or on another instance: NOTIFY `stored_responses:<id>`, forget())
   * drops the entry.
   */
  #recent = new Map<string, RecentEntry>()
  #recentBytes = 0

  constructor(readonly options: ResponseStoreOptions) {}

  get enabled(): boolean {
    return this.options.days > 0
  }

  /**
   * Queues a response (after its answer was sent). Returns false, and keeps
   * nothing, when its input and output together exceed the bound.
   */
  save(record: Omit<StoredResponse, 'expiresAt'>): boolean {
    if (!this.enabled) return false
    const input = record.inputItems === null ? null : itemsJson(record.inputItems)
    const output = record.outputItems === null ? null : itemsJson(record.outputItems)
    const bytes = (input?.length ?? 0) + (output?.length ?? 0) + (record.instructions?.length ?? 0)
    if (bytes > this.options.maxBytes) {
      this.options.log(`stored responses: ${record.id} not stored, ${bytes} bytes of items exceed RESPONSES_STORE_MAX_KB`)
      return false
    }
    // A database that hangs (writes wait for a connection): the queue does not grow without end.
    if (this.#pendingBytes + bytes > (this.options.maxQueuedBytes ?? 64 * 1024 * 1024)) {
      if (!this.#overflowLogged) this.options.log(`stored responses: the write queue is full (database slow or unreachable); answers are not stored until it drains`)
      this.#overflowLogged = true
      return false
    }
    const expiresAt = new Date(record.createdAt.getTime() + this.options.days * 86_400_000)
    const stored = { ...record, expiresAt }
    this.#unqueue(record.id)
    const itemBytes = (input?.length ?? 0) + (output?.length ?? 0)
    this.#pending.set(record.id, { record: stored, input, output, bytes, itemBytes })
    this.#pendingBytes += bytes
    if (record.kind === 'upstream') this.#remember(record.id, record.userId, record.channelId)
    else this.#keepRecent(stored, bytes, itemBytes)
    if (this.#pending.size >= (this.options.batchSize ?? 200)) this.#flushSoon(0)
    else this.#flushSoon(this.options.flushMs ?? 10)
    return true
  }

  /**
   * The response `id` and the ones before it (newest first, at most
   * MAX_CHAIN; an earlier one expired or deleted ends the chain), or null
   * when `id` is unknown. `owner` is false when the id is another user's.
   * The walk counts the items' bytes as it goes and stops once they pass
   * `maxBytes` (`tooLarge`): a follow-up's body cannot hold them, and reading
   * a chain of 256 responses of a MB each to find that out cost 256 MB.
   */
  async chain(id: string, userId: number, maxBytes = Number.MAX_SAFE_INTEGER): Promise<Chain | null> {
    const responses: StoredResponse[] = []
    let itemBytes = 0
    let next: string | null = id
    // The newest may still be queued (a follow-up sent right after its answer), or remembered.
    const now = Date.now()
    while (next !== null && responses.length < MAX_CHAIN) {
      if (this.#tombstones.has(next)) break
      const known: { record: StoredResponse; itemBytes: number } | undefined = this.#pending.get(next) ?? this.#recentEntry(next, now)
      if (!known) break
      if (known.record.userId !== userId) return { owner: false, responses: [], itemBytes: 0 }
      responses.push(known.record)
      itemBytes += known.itemBytes
      if (itemBytes > maxBytes) return { owner: true, responses, tooLarge: true, itemBytes }
      next = known.record.kind === 'gateway' ? known.record.previousResponseId : null
    }
    if (next !== null && responses.length < MAX_CHAIN && !this.#tombstones.has(next)) {
      // A sticky entry answers an upstream-held id without a read.
      const held = responses.length === 0 ? this.#sticky.get(next) : undefined
      if (held !== undefined) {
        if (held.userId !== userId) return { owner: false, responses: [], itemBytes: 0 }
        return { owner: true, responses: [stickyRecord(next, held)], itemBytes: 0 }
      }
      const rows = await db.rawQuery(CHAIN_SQL, [next, MAX_CHAIN - responses.length, maxBytes - itemBytes])
      for (const row of rows.rows) {
        if (this.#tombstones.has(row.id)) break
        // Another user's id: unknown to this one, as at OpenAI (checked on the first; the rest follow the owner).
        if (row.user_id !== String(userId) && Number(row.user_id) !== userId) {
          if (responses.length === 0) return { owner: false, responses: [], itemBytes: 0 }
          break
        }
        const record = fromRow(row)
        const bytes = Number(row.bytes ?? 0)
        responses.push(record)
        itemBytes += bytes
        if (record.kind === 'gateway') this.#keepRecent(record, bytes, bytes)
      }
      const first = responses[0]
      if (first?.kind === 'upstream') this.#remember(first.id, first.userId, first.channelId)
    }
    if (responses.length === 0) return null
    return itemBytes > maxBytes ? { owner: true, responses, tooLarge: true, itemBytes } : { owner: true, responses, itemBytes }
  }

  /** One response of this user (null: unknown, expired, or another user's). */
  async find(id: string, userId: number): Promise<StoredResponse | null> {
    if (this.#tombstones.has(id)) return null
    const queued = this.#pending.get(id)?.record ?? this.#recentRecord(id, Date.now())
    if (queued) return queued.userId === userId ? queued : null
    const rows = await db.rawQuery('SELECT * FROM stored_responses WHERE id = ? AND expires_at > now()', [id])
    const row = rows.rows[0]
    return row && Number(row.user_id) === userId ? fromRow(row) : null
  }

  /**
   * Several responses of this user (the queue and memory first, the rest in
   * one read, then remembered as chain() remembers what it reads: an agent's
   * next turn names the same ones). Unknown, expired, deleted or another
   * user's: left out.
   */
  async findMany(ids: string[], userId: number): Promise<StoredResponse[]> {
    const now = Date.now()
    const found: StoredResponse[] = []
    const missing: string[] = []
    for (const id of ids) {
      if (this.#tombstones.has(id)) continue
      const known = this.#pending.get(id)?.record ?? this.#recentRecord(id, now)
      if (known === undefined) missing.push(id)
      else if (known.userId === userId) found.push(known)
    }
    if (missing.length === 0) return found
    const rows = await db.rawQuery(FIND_MANY_SQL, [missing, userId])
    for (const row of rows.rows) {
      if (this.#tombstones.has(row.id)) continue
      const record = fromRow(row)
      found.push(record)
      if (record.kind === 'gateway') this.#keepRecent(record, Number(row.bytes ?? 0), Number(row.bytes ?? 0))
    }
    return found
  }

  /**
   * Items with these ids among the inputs of this user's latest
   * ITEM_SEARCH_DEPTH gateway-kept responses (the queue first, then one read
   * on the user's index): for item ids that do not name their response.
   */
  async findItems(ids: Set<string>, userId: number): Promise<Map<string, unknown>> {
    const found = new Map<string, unknown>()
    for (const { record } of this.#pending.values()) {
      if (record.userId === userId && record.kind === 'gateway') collectItems(found, ids, record.inputItems)
    }
    const missing = [...ids].filter((id) => !found.has(id))
    if (missing.length === 0) return found
    const rows = await db.rawQuery(ITEMS_SQL, [userId, ITEM_SEARCH_DEPTH, missing])
    for (const row of rows.rows) {
      if (!found.has(row.item.id) && !this.#tombstones.has(row.response_id)) found.set(row.item.id, row.item)
    }
    return found
  }

  /** Deletes a response of this user; false when there was none. */
  async delete(id: string, userId: number): Promise<boolean> {
    const queued = this.#pending.get(id)
    if (this.#tombstones.has(id)) return false
    if (queued) {
      if (queued.record.userId !== userId) return false
      this.#unqueue(id)
      this.#sticky.delete(id)
      this.#forgetRecent(id)
      // Its INSERT is under way: deleted again once that is over (#write).
      if (this.#writing.has(id)) this.#tombstones.add(id)
      return true
    }
    // Other instances forget what they remember of it (gateway.ts hands the NOTIFY to forget()).
    const rows = await db.rawQuery(
      `WITH gone AS (DELETE FROM stored_responses WHERE id = ? AND user_id = ? RETURNING id)
       SELECT id, pg_notify('gateway_changes', 'stored_responses:' || id) FROM gone`,
      [id, userId]
    )
    if (rows.rows.length === 0) return false
    this.forget(id)
    return true
  }

  /**
   * Writes what is queued now (shutdown, tests), in as many INSERTs as it
   * takes: one write takes a batch, and what a timer would write later is lost
   * at shutdown (the pools close right after). Bounded by the queue's size
   * when called: answers saved meanwhile do not keep it going.
   */
  async flush(): Promise<void> {
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = null
    for (let batches = Math.ceil(this.#pending.size / (this.options.batchSize ?? 200)) + 1; batches > 0; batches--) {
      while (this.#flushing) await this.#flushing
      if (this.#pending.size === 0) return
      this.#flushing = this.#write().finally(() => (this.#flushing = null))
      await this.#flushing
    }
  }

  #flushSoon(ms: number) {
    if (this.#timer && ms > 0) return
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = setTimeout(() => {
      this.#timer = null
      void this.flush()
    }, ms)
    this.#timer.unref()
  }

  async #write() {
    const batch = [...this.#pending.values()].slice(0, this.options.batchSize ?? 200)
    for (const row of batch) this.#writing.add(row.record.id)
    try {
      const { lost, error } = await this.#insert(batch)
      this.#reportWrite(lost, lost > 0 && !refusedForData(error) ? error : undefined, error)
    } finally {
      for (const row of batch) {
        // A newer save of the same id (none is expected) stays queued.
        if (this.#pending.get(row.record.id) === row) this.#unqueue(row.record.id)
        this.#writing.delete(row.record.id)
      }
    }
    if (this.#tombstones.size > 0) {
      const ids = [...this.#tombstones]
      try {
        await db.rawQuery('DELETE FROM stored_responses WHERE id = ANY(?)', [ids])
      } catch (error) {
        this.options.log(`stored responses: ${ids.length} deleted ones could not be deleted: ${error instanceof Error ? error.message : String(error)}`)
      }
      for (const id of ids) this.#tombstones.delete(id)
    }
    if (this.#pending.size > 0) this.#flushSoon(0)
    else this.#overflowLogged = false
  }

  /**
   * One INSERT of the rows; refused for a row's data (a key or channel
   * deleted since the answer; items and instructions with a NUL are written
   * in a form Postgres holds, stored_items_json.ts),
   * the batch is split in halves until only the rows refused are left out:
   * one client's bad row never loses the other answers of its batch. A
   * database that cannot be reached loses the batch at once (no retries).
   */
  async #insert(rows: PendingRow[]): Promise<{ lost: number; error?: unknown }> {
    try {
      // A background response's row, saved queued, is written again when it ends (its status, output and usage);
      // any other id met again (none is expected) stays as first written.
      const insert = db.table('stored_responses').multiInsert(rows.map(toColumns)).onConflict('id').merge(['status', 'output_items', 'usage', 'channel_id', 'error'])
      // ON CONFLICT ... DO UPDATE ... WHERE (knex's, under Lucid's builder)
      insert.knexQuery.where('stored_responses.background', true).whereRaw('stored_responses.user_id = excluded.user_id')
      await insert
      return { lost: 0 }
    } catch (error) {
      if (rows.length === 1 || !refusedForData(error)) return { lost: rows.length, error }
      const half = Math.ceil(rows.length / 2)
      const first = await this.#insert(rows.slice(0, half))
      const second = await this.#insert(rows.slice(half))
      return { lost: first.lost + second.lost, error: second.error ?? first.error }
    }
  }

  /**
   * Logs what a write lost. A write that failed for the connection or the
   * table (the database unreachable, every flush failing) is logged once, then counted until a
   * write goes through, which logs how many were lost meanwhile: an outage is
   * two lines, not one every 10 ms. Rows refused for their data are logged as
   * they come (rare, and each a different cause).
   */
  #reportWrite(lost: number, outage: unknown, error: unknown) {
    const reason = (e: unknown) => (e instanceof Error ? e.message : String(e))
    if (outage !== undefined) {
      if (this.#lostInOutage === 0) this.options.log(`stored responses: ${lost} could not be written (${reason(outage)}); further failures counted until a write succeeds`)
      this.#lostInOutage += lost
      return
    }
    if (this.#lostInOutage > 0) {
      this.options.log(`stored responses: writes succeed again; ${this.#lostInOutage} responses were not stored meanwhile`)
      this.#lostInOutage = 0
    }
    if (lost > 0) this.options.log(`stored responses: ${lost} could not be written: ${reason(error)}`)
  }

  #unqueue(id: string) {
    const row = this.#pending.get(id)
    if (row === undefined) return
    this.#pending.delete(id)
    this.#pendingBytes -= row.bytes
  }

  #remember(id: string, userId: number, channelId: number | null) {
    this.#sticky.delete(id)
    this.#sticky.set(id, { userId, channelId })
    if (this.#sticky.size > STICKY_ENTRIES) this.#sticky.delete(this.#sticky.keys().next().value!)
  }

  /** A response deleted (here or on another instance): nothing of it is remembered any more. */
  forget(id: string) {
    this.#sticky.delete(id)
    this.#forgetRecent(id)
  }

  /** Forgets what is cached in memory (tests: as another instance, or after a restart, would see it). */
  forgetCached() {
    this.#sticky.clear()
    this.#recent.clear()
    this.#recentBytes = 0
  }

  #recentRecord(id: string, now: number): StoredResponse | undefined {
    return this.#recentEntry(id, now)?.record
  }

  #recentEntry(id: string, now: number): RecentEntry | undefined {
    const entry = this.#recent.get(id)
    if (!entry) return undefined
    if (entry.record.expiresAt.getTime() <= now) {
      this.#forgetRecent(id)
      return undefined
    }
    // Used: the most recent again.
    this.#recent.delete(id)
    this.#recent.set(id, entry)
    return entry
  }

  #keepRecent(record: StoredResponse, bytes: number, itemBytes: number) {
    if (bytes > RECENT_BYTES / 8 || unfinished(record.status)) return
    this.#forgetRecent(record.id)
    this.#recent.set(record.id, { record, bytes, itemBytes })
    this.#recentBytes += bytes
    while (this.#recentBytes > RECENT_BYTES) this.#forgetRecent(this.#recent.keys().next().value!)
  }

  #forgetRecent(id: string) {
    const entry = this.#recent.get(id)
    if (!entry) return
    this.#recent.delete(id)
    this.#recentBytes -= entry.bytes
  }
}

/**
 * The JSON of a row's items, in bytes at least: jsonb's text writes a space
 * after each `:` and `,` that JSON.stringify does not, so those are taken out
 * (one inside a string too: a lower bound). Numbers jsonb writes longer than
 * JavaScript does (1e300 in full) are the one way past it: a conversation
 * made of them may meet its 413 a little early.
 */
const ITEM_BYTES = (row: string) =>
  `coalesce(octet_length(replace(replace(${row}.input_items::text, ', ', ','), ': ', ':')), 0)
 + coalesce(octet_length(replace(replace(${row}.output_items::text, ', ', ','), ': ', ':')), 0)`

/**
 * The chain from one id back through previous_response_id, one read: the
 * rows not expired, each earlier one of the same owner and kept here (an
 * upstream-held response has no earlier one recorded), at most ? deep, and
 * no further once the items read pass ? bytes (`total`, counted as the
 * recursion goes: the database reads no more than that and one row either).
 */
const CHAIN_SQL = `
WITH RECURSIVE chain AS (
  SELECT s.*, 1 AS depth, z.bytes, z.bytes AS total
    FROM stored_responses s, LATERAL (SELECT (${ITEM_BYTES('s')})::bigint AS bytes) z
   WHERE s.id = ? AND s.expires_at > now()
  UNION ALL
  SELECT p.*, c.depth + 1, z.bytes, c.total + z.bytes
    FROM chain c JOIN stored_responses p ON p.id = c.previous_response_id, LATERAL (SELECT (${ITEM_BYTES('p')})::bigint AS bytes) z
   WHERE c.kind = 'gateway' AND p.user_id = c.user_id AND p.expires_at > now() AND c.depth < ? AND c.total <= ?
)
SELECT * FROM chain ORDER BY depth`

/** Responses by id, of one user, not expired, with the size memory counts them at */
const FIND_MANY_SQL = `
SELECT *, ${ITEM_BYTES('stored_responses')} AS bytes
  FROM stored_responses WHERE id = ANY(?) AND user_id = ? AND expires_at > now()`

/** Input items by id in a user's latest gateway-kept responses (index stored_responses_user_recent), newest first */
const ITEMS_SQL = `
SELECT s.id AS response_id, item FROM (
  SELECT id, input_items, created_at FROM stored_responses
   WHERE user_id = ? AND kind = 'gateway' AND expires_at > now() ORDER BY created_at DESC LIMIT ?
) s, LATERAL jsonb_array_elements(coalesce(s.input_items, '[]'::jsonb)) item
WHERE item->>'id' = ANY(?) ORDER BY s.created_at DESC`

/** A row refused for its values (SQLSTATE classes 22 data exception, 23 integrity constraint), not for the connection */
function refusedForData(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code
  return typeof code === 'string' && (code.startsWith('22') || code.startsWith('23'))
}

/** Puts the items of `lists` whose id is asked for (and not found yet) in `found` */
export function collectItems(found: Map<string, unknown>, ids: Set<string>, ...lists: Array<unknown[] | null>) {
  for (const list of lists) {
    for (const item of list ?? []) {
      const id = (item as { id?: unknown } | null)?.id
      if (typeof id === 'string' && ids.has(id) && !found.has(id) && (item as { type?: unknown }).type !== 'item_reference') found.set(id, item)
    }
  }
}

function toColumns({ record, input, output }: PendingRow) {
  return {
    id: record.id,
    kind: record.kind,
    user_id: record.userId,
    api_key_id: record.apiKeyId,
    channel_id: record.channelId,
    model: record.model,
    previous_response_id: record.previousResponseId,
    input_items: input,
    instructions: instructionsText(record.instructions),
    output_items: output,
    usage: record.usage === null ? null : JSON.stringify(record.usage),
    status: record.status,
    background: record.background === true,
    instance_id: record.instanceId ?? null,
    error: record.error == null ? null : JSON.stringify(record.error),
    created_at: record.createdAt,
    expires_at: record.expiresAt,
  }
}

function fromRow(row: any): StoredResponse {
  return {
    id: row.id,
    kind: row.kind,
    userId: Number(row.user_id),
    apiKeyId: row.api_key_id === null ? null : Number(row.api_key_id),
    channelId: row.channel_id === null ? null : Number(row.channel_id),
    model: row.model,
    previousResponseId: row.previous_response_id,
    inputItems: itemsFromColumn(row.input_items),
    instructions: instructionsFromColumn(row.instructions),
    outputItems: itemsFromColumn(row.output_items),
    usage: row.usage,
    status: row.status,
    background: row.background === true,
    instanceId: row.instance_id ?? null,
    error: row.error ?? null,
    createdAt: new Date(row.created_at),
    expiresAt: new Date(row.expires_at),
  }
}

/** What a sticky entry says of an upstream-held response (enough to route a follow-up) */
function stickyRecord(id: string, held: { userId: number; channelId: number | null }): StoredResponse {
  return {
    id,
    kind: 'upstream',
    userId: held.userId,
    apiKeyId: null,
    channelId: held.channelId,
    model: '',
    previousResponseId: null,
    inputItems: null,
    instructions: null,
    outputItems: null,
    usage: null,
    status: 'completed',
    createdAt: new Date(0),
    expiresAt: new Date(0),
  }
}
