/**
 * The SET clauses that keep a row's spend in the newest UTC day/week/month of
 * its period (api_keys, end_users, teams: `period_spent`, `period_start`, and
 * the row's period column), written once for the meter's statements.
 *
 * The newest period is the later of the row's own `period_start` and the
 * period holding the batch's latest row (`last`): rows of an older period (a
 * replayed spill, a call that began before midnight) add only to the
 * lifetime spend, and a batch that opens a new period starts it from its own
 * rows. A row without a period keeps 0 and its `period_start` (GREATEST
 * ignores the NULL that date_trunc gives for a NULL period).
 *
 * `rows` is the CTE of the batch's usage rows (columns `cost`, `created_at`),
 * read under the alias `r`; `match` ties them to the updated row.
 */
export interface PeriodSpendTarget {
  /** The updated table's alias (`k` for api_keys) */
  row: string
  /** Its period column: 'day' | 'week' | 'month' | NULL */
  period: string
  /** The batch's latest created_at for the row (e.g. `t.last_at`) */
  last: string
  /** The rows to sum, read as `r` (e.g. `ins`) */
  rows: string
  /** Which of them are the updated row's (e.g. `r.api_key_id = k.id`) */
  match: string
}

export function periodSpendAssignments({ row, period, last, rows, match }: PeriodSpendTarget): string {
  const newest = `GREATEST(${row}.period_start, date_trunc(${row}.${period}, ${last} AT TIME ZONE 'UTC')::date)`
  return `period_spent = CASE WHEN ${row}.${period} IS NULL THEN 0 ELSE
        (CASE WHEN ${row}.period_start = ${newest} THEN ${row}.period_spent ELSE 0 END)
      + (SELECT COALESCE(SUM(r.cost), 0) FROM ${rows} r
          WHERE ${match} AND date_trunc(${row}.${period}, r.created_at AT TIME ZONE 'UTC')::date = ${newest})
      END,
    period_start = ${newest}`
}
