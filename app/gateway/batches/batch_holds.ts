import db from '@adonisjs/lucid/services/db'
import type { Catalog } from '#gateway/catalog'
import { holdOnKey, releaseOnKey } from '#gateway/metering/key_reservations'
import { toPico } from '#gateway/metering/money'

interface Hold {
  userId: number
  keyId: number | null
  pico: bigint
  /** When this process took it (epoch ms): a sync started before then cannot know it */
  since: number
}

/**
 * What unbilled batches hold on their owners' balances (and keys' spend
 * caps), in this process: a batch lasts up to a day, far beyond any request,
 * so its hold lives in `batch_objects.hold` and here, beside the requests'
 * holds on the same user state (`reservedPico`, which every priced request's
 * balance check counts: access_policy.ts) and key (key_reservations.ts).
 *
 * `sync()` reads the table (at boot, and at each sweep): a restart finds its
 * batches' holds again, and another instance's batches are held here within
 * a sweep. A user not loaded yet gets its holds when it is (Catalog.standingHolds).
 */
export class BatchHolds {
  /** By batch row id */
  #holds = new Map<number, Hold>()
  #byUser = new Map<number, bigint>()
  /** Batches released here, and when: a sync whose read began before that still sees them unbilled */
  #released = new Map<number, number>()

  constructor(private catalog: Catalog) {
    catalog.standingHolds = (userId) => this.#byUser.get(userId) ?? 0n
  }

  /** pico-USD held for the user's batches */
  heldFor(userId: number): bigint {
    return this.#byUser.get(userId) ?? 0n
  }

  /** Holds `pico` for the batch (once: a second hold of the same batch is ignored). */
  hold(batchId: number, userId: number, keyId: number | null, pico: bigint) {
    if (pico <= 0n || this.#holds.has(batchId) || this.#released.has(batchId)) return
    this.#holds.set(batchId, { userId, keyId, pico, since: Date.now() })
    this.#byUser.set(userId, this.heldFor(userId) + pico)
    const state = this.catalog.loadedUser(userId)
    if (state) state.reservedPico += pico
    if (keyId !== null) holdOnKey(keyId, pico)
  }

  /** Releases the batch's hold (billed, or its creation failed); a batch not held is a no-op. */
  release(batchId: number) {
    this.#released.set(batchId, Date.now())
    const hold = this.#holds.get(batchId)
    if (!hold) return
    this.#holds.delete(batchId)
    const left = this.heldFor(hold.userId) - hold.pico
    if (left > 0n) this.#byUser.set(hold.userId, left)
    else this.#byUser.delete(hold.userId)
    const state = this.catalog.loadedUser(hold.userId)
    if (state) state.reservedPico -= hold.pico
    if (hold.keyId !== null) releaseOnKey(hold.keyId, hold.pico)
  }

  /**
   * Makes the holds what the table says: every unbilled batch held, every
   * hold of a batch billed elsewhere (another instance) released. A hold taken
   * or released here while the read was out is left as it is.
   */
  async sync() {
    const started = Date.now()
    const result = await db.rawQuery(
      `SELECT id, user_id, api_key_id, hold::text AS hold FROM batch_objects
        WHERE kind = 'batch' AND billed_at IS NULL AND hold > 0`
    )
    const unbilled = new Set<number>()
    for (const row of result.rows) {
      const id = Number(row.id)
      unbilled.add(id)
      if (this.#released.has(id)) continue
      this.hold(id, Number(row.user_id), row.api_key_id === null ? null : Number(row.api_key_id), toPico(row.hold))
    }
    // A batch being created (a negative id, batches_api.ts) has no row yet: its hold stays until its creation ends.
    for (const [id, hold] of this.#holds) if (id > 0 && !unbilled.has(id) && hold.since < started) this.release(id)
    // A release older than this read is in it (billed_at set): no later sync can hold it again.
    for (const [id, at] of this.#released) if (at < started) this.#released.delete(id)
  }
}
