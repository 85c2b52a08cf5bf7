/**
 * Names of API keys the gateway's key cache does not hold (a key not used
 * since the cache let it go, rows a spill replay exports at boot), for log
 * export only: read by the export loop once per batch for that batch's
 * unknown ids (one query), kept for `ttlMs` (a rename shows within it), at
 * most `max` of them (the oldest go first). A key with no row (deleted) is
 * kept as null, so it is not read again each batch.
 */
export class ExportKeyNames {
  #names = new Map<number, { name: string | null; at: number }>()

  constructor(
    private read: (ids: readonly number[]) => Promise<Array<{ id: number | string; name: string | null }>>,
    private ttlMs = 5 * 60_000,
    private max = 10_000
  ) {}

  /** The name read for a key, null when none was (or it has none). */
  get(keyId: number): string | null {
    return this.#names.get(keyId)?.name ?? null
  }

  /** Reads, in one query, the names of the ids not read within the TTL. */
  async load(keyIds: readonly number[]) {
    const now = Date.now()
    const stale = keyIds.filter((id) => {
      const known = this.#names.get(id)
      return known === undefined || now - known.at > this.ttlMs
    })
    if (stale.length === 0) return
    const found = new Map<number, string | null>()
    for (const row of await this.read(stale)) found.set(Number(row.id), row.name)
    for (const id of stale) {
      // Re-inserted: the map's order stays oldest read first.
      this.#names.delete(id)
      this.#names.set(id, { name: found.get(id) ?? null, at: now })
    }
    while (this.#names.size > this.max) this.#names.delete(this.#names.keys().next().value!)
  }
}
