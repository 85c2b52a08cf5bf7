/**
 * Reads of rows the meter also writes (a user's balance, a key's, team's or
 * end user's spend), to which the reader then adds the meter's pending totals
 * (what was recorded but not committed yet).
 *
 * The two agree only if no batch write was under way while the row was read:
 * a batch that commits during the read may be in the row already while its
 * records are still pending (counted twice: a team refused early until its
 * next reload), and one that settles during the read may have left the
 * pending totals while the row predates its commit (counted never). So a
 * read waits, briefly, for the write under way to settle, and is done again
 * if a write began or ended while it was out.
 */
export interface MeterWrites {
  /** Batch writes begun whose records have not settled (or gone back to pending) yet */
  readonly writesUnderWay: number
  /** Bumped when a batch write begins and when it ends */
  readonly writeEpoch: number
  /** Resolves once no write is under way, or after `ms` */
  idle(ms: number): Promise<void>
}

export const NO_METER_WRITES: MeterWrites = { writesUnderWay: 0, writeEpoch: 0, idle: () => Promise.resolve() }

/** Tries before a read is taken as it is (under a write every few ms, a few tries find a gap). */
const SETTLE_RETRIES = 4
/**
 * The longest a read waits for writes to settle, all tries together (a write
 * retrying against a database that went away, or blocked on a row lock,
 * takes seconds: the read on a key's first call must not wait for it).
 */
export const IDLE_WAIT_MS = 250

export async function readSettled<T>(meter: MeterWrites, read: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + IDLE_WAIT_MS
  for (let attempt = 0; ; attempt++) {
    const left = deadline - Date.now()
    if (meter.writesUnderWay > 0 && left > 0) await meter.idle(left)
    const clean = meter.writesUnderWay === 0
    const epoch = meter.writeEpoch
    const result = await read()
    if (clean && meter.writeEpoch === epoch) return result
    // A write still under way past the wait: reading again cannot do better; taken as it is.
    if (attempt >= SETTLE_RETRIES || (!clean && Date.now() >= deadline)) return result
  }
}
