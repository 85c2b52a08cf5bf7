import db from '@adonisjs/lucid/services/db'
import { writeAudit, type Actor } from '#actions/audit'

/**
 * Settings > E-mail's "Retry failed": rows given up on, and those waiting for
 * their next attempt, are due now with a fresh count of attempts. Not those
 * whose link expired (their body is gone), nor one a sender holds. Audited in
 * the same transaction (it resends mail to people). The number made due.
 */
export async function retryFailedMail(actor: Actor): Promise<number> {
  return db.transaction(async (trx) => {
    const result = await trx.rawQuery(
      `UPDATE mail_outbox SET failed_at = NULL, attempts = 0, next_attempt_at = now(), locked_until = NULL
        WHERE sent_at IS NULL AND (failed_at IS NOT NULL OR last_error IS NOT NULL)
          AND (expires_at IS NULL OR expires_at > now())
          AND (locked_until IS NULL OR locked_until < now())`
    )
    const count = result.rowCount ?? 0
    if (count > 0) {
      await writeAudit(trx, actor, {
        action: 'mail.retry',
        subjectType: 'settings',
        subjectId: null,
        summary: `${count} failed e-mail${count === 1 ? '' : 's'} queued again`,
        after: { queued: count },
      })
    }
    return count
  })
}
