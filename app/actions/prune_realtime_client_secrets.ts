import db from '@adonisjs/lucid/services/db'

/** Rows deleted per statement: short transactions beside the gateway's own writes */
const BATCH = 1_000

/**
 * Deletes the Realtime API's client secrets past their expiry
 * (realtime/client_secrets.ts: a connect never takes one then, it reads
 * `expires_at > now()`): this only gives the space back. Run by the server's
 * hourly retention timer and `usage:prune` (retention_sweeps.ts), not by each minting (a mint was a DELETE too), in
 * batches by the expiry index until one comes back short; several instances
 * may run it at once (each statement re-checks its rows). Returns the rows
 * deleted (with `dryRun`, the rows that would be).
 */
export async function pruneRealtimeClientSecrets(options: { now?: Date; dryRun?: boolean } = {}): Promise<number> {
  const now = options.now ?? new Date()
  if (options.dryRun) {
    const row = await db.from('realtime_client_secrets').where('expires_at', '<=', now).count('* as n').first()
    return Number(row?.n ?? 0)
  }
  let deleted = 0
  for (;;) {
    const result = await db.rawQuery(
      `DELETE FROM realtime_client_secrets WHERE id IN (SELECT id FROM realtime_client_secrets WHERE expires_at <= ? ORDER BY expires_at LIMIT ${BATCH})
         AND expires_at <= ?`,
      [now, now]
    )
    deleted += result.rowCount ?? 0
    if ((result.rowCount ?? 0) < BATCH) return deleted
  }
}
