import db from '@adonisjs/lucid/services/db'
import { MIN_RETENTION_DAYS, retentionDays } from '#services/usage_retention'

/** Rows per statement: short transactions beside the gateway's own writes */
const BATCH = 1_000

/** Google keeps a resumable upload's session a week: a row older can no longer be finished. */
export const UPLOAD_SESSION_MS = 7 * 86_400_000

/** Past a file's or cache's expiry before it counts as gone (Google's clock and this one may differ a little). */
const EXPIRY_GRACE_MS = 5 * 60_000

export interface PrunedProviderFiles {
  /** Active rows past their expiry (a Gemini file's 48 hours, a cache's ttl) marked deleted */
  expired: number
  /** Resumable uploads started more than a week ago and never finished, deleted */
  abandoned: number
  /** Deleted rows past the retention, deleted */
  deleted: number
}

/**
 * Deleted rows are kept as long as usage rows (USAGE_RETENTION_DAYS), and
 * MIN_RETENTION_DAYS when those are kept forever: a deleted row only keeps
 * a stale reference its owner's 404 (the upstream says the same by then),
 * and a table that a create-and-delete loop grows is no log the operator
 * asked to keep.
 */
export function deletedRetentionDays(): number {
  return retentionDays() > 0 ? retentionDays() : MIN_RETENTION_DAYS
}

/**
 * The sweep of `provider_files` (app/gateway/provider_files/), run by the
 * server's hourly retention timer and `usage:prune` (retention_sweeps.ts; `dryRun`
 * counts only): files and caches past their expiry are
 * marked deleted (Google has dropped them; each instance forgets the id:
 * the same NOTIFY as an owner's delete), resumable uploads never finished
 * within Google's week go, and deleted rows past `deletedRetentionDays`.
 * In batches; several instances may run it at once (each statement
 * re-checks its rows).
 */
export async function pruneProviderFiles(
  options: { now?: Date; keepDeletedDays?: number; dryRun?: boolean } = {}
): Promise<PrunedProviderFiles> {
  const now = options.now ?? new Date()
  const expiredBefore = new Date(now.getTime() - EXPIRY_GRACE_MS)
  const startedBefore = new Date(now.getTime() - UPLOAD_SESSION_MS)
  const deletedBefore = new Date(now.getTime() - (options.keepDeletedDays ?? deletedRetentionDays()) * 86_400_000)
  if (options.dryRun) {
    const count = async (status: string, column: string, before: Date) =>
      Number((await db.from('provider_files').where('status', status).where(column, '<=', before).count('* as n').first())?.n ?? 0)
    return {
      expired: await count('active', 'expires_at', expiredBefore),
      abandoned: await count('uploading', 'created_at', startedBefore),
      deleted: await count('deleted', 'deleted_at', deletedBefore),
    }
  }
  const result: PrunedProviderFiles = { expired: 0, abandoned: 0, deleted: 0 }
  result.expired = await batches(
    `WITH gone AS (
       UPDATE provider_files SET status = 'deleted', deleted_at = expires_at
       WHERE id IN (SELECT id FROM provider_files WHERE status = 'active' AND expires_at <= ? LIMIT ${BATCH})
         AND status = 'active' AND expires_at <= ?
       RETURNING kind, upstream_id)
     SELECT CASE WHEN upstream_id IS NOT NULL THEN pg_notify('gateway_changes', 'provider_files:' || kind || ':' || upstream_id) END FROM gone`,
    [expiredBefore, expiredBefore]
  )
  result.abandoned = await batches(
    `DELETE FROM provider_files WHERE id IN (SELECT id FROM provider_files WHERE status = 'uploading' AND created_at <= ? LIMIT ${BATCH})
       AND status = 'uploading'`,
    [startedBefore]
  )
  result.deleted = await batches(
    `DELETE FROM provider_files WHERE id IN (SELECT id FROM provider_files WHERE status = 'deleted' AND deleted_at <= ? LIMIT ${BATCH})
       AND status = 'deleted'`,
    [deletedBefore]
  )
  return result
}

/** Runs the statement until it touches fewer than a batch; the rows it touched. */
async function batches(sql: string, bindings: unknown[]): Promise<number> {
  let total = 0
  for (;;) {
    const result = await db.rawQuery(sql, bindings as any[])
    // An UPDATE ... RETURNING read by a SELECT answers its rows; a DELETE its count.
    const count = result.command === 'SELECT' ? result.rows.length : (result.rowCount ?? 0)
    total += count
    if (count < BATCH) return total
  }
}
