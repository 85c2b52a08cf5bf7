import db from '@adonisjs/lucid/services/db'

/** Rows deleted per statement: short transactions beside the gateway's own writes */
const BATCH = 5_000

/**
 * Deletes the stored Responses past their `expires_at` (RESPONSES_STORE_DAYS
 * after they were answered; app/gateway/responses_store/), in batches. A
 * lookup never returns an expired one meanwhile (it reads `expires_at >
 * now()`): this only gives the space back. Run by the server's hourly
 * retention timer and by `usage:prune`. Returns the rows deleted (with
 * `dryRun`, the rows that would be). Expired conversations (the Conversations
 * API, kept as long after their last write) go too, counted with them.
 */
export async function pruneStoredResponses(options: { dryRun?: boolean; now?: Date } = {}): Promise<number> {
  const now = options.now ?? new Date()
  if (options.dryRun) {
    const row = await db.from('stored_responses').where('expires_at', '<=', now).count('* as n').first()
    const conversations = await db.from('conversations').where('expires_at', '<=', now).count('* as n').first()
    return Number(row?.n ?? 0) + Number(conversations?.n ?? 0)
  }
  let deleted = 0
  for (;;) {
    const result = await db.rawQuery(
      'DELETE FROM stored_responses WHERE ctid IN (SELECT ctid FROM stored_responses WHERE expires_at <= ? LIMIT ?)',
      [now, BATCH]
    )
    deleted += result.rowCount ?? 0
    if ((result.rowCount ?? 0) < BATCH) break
  }
  // Conversations not written for RESPONSES_STORE_DAYS (their items go with them), as few at a time.
  for (;;) {
    const result = await db.rawQuery('DELETE FROM conversations WHERE id IN (SELECT id FROM conversations WHERE expires_at <= ? LIMIT ?)', [now, BATCH])
    deleted += result.rowCount ?? 0
    if ((result.rowCount ?? 0) < BATCH) return deleted
  }
}
