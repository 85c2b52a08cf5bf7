import type pg from 'pg'
import { MIN_RETENTION_DAYS } from '#services/usage_retention'
import type { SpilledRecord } from '#gateway/metering/spill_file'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const DAY_MS = 86_400_000

/**
 * Of the spilled records of a pruned day, the request ids already charged.
 *
 * Per record (one per request id): its day's prune left an id range
 * (usage_pruned_days) and the ledger kept the charges of the deleted rows
 * with their usage_record_id (prune_usage.ts). A charge of the same user,
 * at the same instant, of the same amount, pointing into that range at a
 * row that is gone, is this record's. Records alike in all three (two
 * requests of one user in the same millisecond at the same cost) are
 * matched by count: with one such charge and two such records, one record
 * is dropped and the other written.
 */
const CHARGED_SQL = `
WITH r AS (
  SELECT DISTINCT ON (request_id) request_id, user_id, created_at, cost
    FROM unnest($1::uuid[], $2::bigint[], $3::timestamptz[], $4::numeric[]) AS r(request_id, user_id, created_at, cost)
   WHERE cost > 0 AND NOT EXISTS (SELECT 1 FROM usage_records u WHERE u.request_id = r.request_id)
),
ranked AS (
  SELECT r.*, d.first_id, d.last_id,
         row_number() OVER (PARTITION BY r.user_id, r.created_at, r.cost ORDER BY r.request_id) AS n
    FROM r JOIN usage_pruned_days d ON d.day = (r.created_at AT TIME ZONE 'UTC')::date
)
SELECT request_id::text AS request_id FROM ranked
 WHERE n <= (SELECT count(*) FROM balance_ledger l
              WHERE l.user_id = ranked.user_id AND l.created_at = ranked.created_at
                AND l.kind = 'charge' AND l.amount = -ranked.cost
                AND l.usage_record_id BETWEEN ranked.first_id AND ranked.last_id
                AND NOT EXISTS (SELECT 1 FROM usage_records u WHERE u.id = l.usage_record_id))`

/**
 * A spill can hold records that were also written (a batch that committed
 * as the writer gave up on it, a slice the database dropped halfway): the
 * replay relies on usage_records.request_id to skip them. Once the
 * retention prune has deleted their day, that check finds nothing and the
 * replay would charge them again. Such records (only possible past
 * MIN_RETENTION_DAYS: a spill left unreplayed for a month) are found by
 * their ledger charge and dropped. A zero-cost record of a pruned day has
 * no charge to be found by: it is written (a usage row and counters at
 * worst twice, never money), rather than risk losing it.
 *
 * Throws when the database does not answer (the replay then waits, as for
 * a failed write).
 */
export async function withoutPrunedCharges(
  pool: pg.Pool,
  records: SpilledRecord[],
  now = Date.now()
): Promise<{ records: SpilledRecord[]; dropped: number }> {
  // Rows on or after this day are never pruned (at least MIN_RETENTION_DAYS are kept).
  const bound = new Date(now - MIN_RETENTION_DAYS * DAY_MS).toISOString().slice(0, 10)
  const old = records.filter(
    (r) => String(r.e.created_at) < bound && typeof r.e.request_id === 'string' && UUID.test(r.e.request_id)
  )
  if (old.length === 0) return { records, dropped: 0 }
  const { rows } = await pool.query(CHARGED_SQL, [
    old.map((r) => r.e.request_id),
    old.map((r) => r.e.user_id),
    old.map((r) => r.e.created_at),
    old.map((r) => r.e.cost),
  ])
  if (rows.length === 0) return { records, dropped: 0 }
  const charged = new Set(rows.map((row) => String(row.request_id).toLowerCase()))
  const kept = records.filter((r) => !charged.has(String(r.e.request_id).toLowerCase()))
  return { records: kept, dropped: records.length - kept.length }
}
