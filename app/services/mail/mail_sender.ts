import db from '@adonisjs/lucid/services/db'
import { deliverMail, errorText, type RenderedMail } from '#services/mail/mail_outbox'

/**
 * Each instance's sender of the outbox (table mail_outbox, migration 1023).
 * It claims due rows with `FOR UPDATE SKIP LOCKED` and a lease
 * (`locked_until`, so a second instance, or this one's next claim, skips a
 * row being sent; a crashed sender's row is due again when the lease ends),
 * sends up to CONCURRENCY at a time, marks each sent, or failed with its
 * error and the next attempt after a backoff. Woken at once by a row queued
 * in this process or (NOTIFY) in another; a slow poll picks up what a
 * notification missed and prunes sent rows.
 *
 * A message carrying a live link (`expires_at`) is never sent after it,
 * and its body is erased once sent, given up on or expired: the outbox
 * never holds a working reset link longer than it takes to send it.
 */
export const CONCURRENCY = 2
/** After attempt n fails, attempt n+1 waits BACKOFF_MS[n-1]; the attempt after the last waits for "Retry failed". */
export const BACKOFF_MS = [60_000, 5 * 60_000, 15 * 60_000, 60 * 60_000]
export const MAX_ATTEMPTS = BACKOFF_MS.length + 1
/** How long a claimed row is this sender's: well past nodemailer's timeouts (smtp_transport.ts) */
const LEASE_MS = 5 * 60_000
/** Sent rows kept this long (the panel's counts), then deleted */
export const SENT_KEPT_DAYS = 7

interface OutboxRow extends RenderedMail {
  id: number
  attempts: number
  expires_at: Date | null
}

const CLAIM_SQL = `
UPDATE mail_outbox SET locked_until = now() + (? * interval '1 millisecond'), attempts = attempts + 1
 WHERE id IN (
   SELECT id FROM mail_outbox
    WHERE sent_at IS NULL AND failed_at IS NULL AND next_attempt_at <= now()
      AND (locked_until IS NULL OR locked_until < now())
    ORDER BY next_attempt_at, id
    LIMIT ? FOR UPDATE SKIP LOCKED)
RETURNING id, "to", sender_name AS "senderName", subject, html, text, kind, attempts, expires_at`

/** The body of a message with a live link goes once it is no longer to be sent. */
const ERASE_LINK = `html = CASE WHEN expires_at IS NULL THEN html ELSE '' END, text = CASE WHEN expires_at IS NULL THEN text ELSE '' END`

export interface MailSenderOptions {
  log: (level: 'info' | 'warn' | 'error', message: string, fields?: Record<string, unknown>) => void
  /** Sends one message (mail_outbox.ts deliverMail) */
  deliver?: (mail: RenderedMail) => Promise<void>
  pollMs?: number
}

export class MailSender {
  #stopped = true
  #claiming = false
  /** A row may be due: claim again */
  #more = false
  #active = new Map<number, Promise<void>>()
  #poll: NodeJS.Timeout | null = null
  #lastPrune = 0
  #settleWaiters: Array<() => void> = []
  readonly #deliver: (mail: RenderedMail) => Promise<void>

  constructor(private options: MailSenderOptions) {
    this.#deliver = options.deliver ?? ((mail) => deliverMail(mail))
  }

  start() {
    if (!this.#stopped) return
    this.#stopped = false
    const pollMs = this.options.pollMs ?? 30_000
    this.#poll = setInterval(() => this.#tick(), pollMs)
    this.#poll.unref()
    // Rows a restart or another instance left are due now.
    this.wake()
  }

  get running() {
    return !this.#stopped
  }

  /** A row was queued (here, or NOTIFY from another instance): claim at once. */
  wake() {
    this.#more = true
    this.#pump()
  }

  #tick() {
    if (Date.now() - this.#lastPrune > 3600_000) {
      this.#lastPrune = Date.now()
      pruneSentMail().catch((error) => this.options.log('warn', 'outbox prune failed', { error: errorText(error) }))
    }
    this.wake()
  }

  #pump() {
    if (this.#stopped || this.#claiming || !this.#more) return this.#maybeSettled()
    const room = CONCURRENCY - this.#active.size
    if (room <= 0) return
    this.#claiming = true
    this.#more = false
    db.rawQuery(CLAIM_SQL, [LEASE_MS, room])
      .then(({ rows }: { rows: OutboxRow[] }) => {
        // A full claim: more may be due once a slot frees.
        if (rows.length === room) this.#more = true
        for (const row of rows) this.#send(row)
      })
      .catch((error) => this.options.log('warn', 'outbox claim failed (the next poll tries again)', { error: errorText(error) }))
      .finally(() => {
        this.#claiming = false
        this.#pump()
      })
  }

  #send(row: OutboxRow) {
    const done = this.#attempt(row).finally(() => {
      this.#active.delete(row.id)
      this.#pump()
    })
    this.#active.set(row.id, done)
  }

  async #attempt(row: OutboxRow) {
    if (row.expires_at && row.expires_at.getTime() <= Date.now()) {
      await this.#giveUp(row.id, 'expired before it could be sent: the link in it no longer works')
      return
    }
    let failure: string | null = null
    try {
      await this.#deliver(row)
    } catch (error) {
      failure = errorText(error)
    }
    // Stopped meanwhile and past the wait: stop() gave the row back already (it may be sent again at the next start).
    if (failure === null) {
      await db.rawQuery(`UPDATE mail_outbox SET sent_at = now(), locked_until = NULL, last_error = NULL, ${ERASE_LINK} WHERE id = ?`, [row.id]).catch(
        (error) => this.options.log('error', 'e-mail sent but not marked sent (it may be sent again)', { id: row.id, error: errorText(error) })
      )
      return
    }
    if (row.attempts >= MAX_ATTEMPTS) {
      this.options.log('error', 'e-mail not sent: giving up', { id: row.id, kind: row.kind, attempts: row.attempts, error: failure })
      await this.#giveUp(row.id, failure)
      return
    }
    const waitMs = BACKOFF_MS[row.attempts - 1]
    this.options.log('warn', 'e-mail not sent: will retry', { id: row.id, kind: row.kind, attempts: row.attempts, retryInSeconds: waitMs / 1000, error: failure })
    await db
      .rawQuery(`UPDATE mail_outbox SET locked_until = NULL, last_error = ?, next_attempt_at = now() + (? * interval '1 millisecond') WHERE id = ? AND sent_at IS NULL`, [
        failure,
        waitMs,
        row.id,
      ])
      .catch((error) => this.options.log('error', 'e-mail failure not recorded (retried when its lease ends)', { id: row.id, error: errorText(error) }))
  }

  async #giveUp(id: number, error: string) {
    await db
      .rawQuery(`UPDATE mail_outbox SET failed_at = now(), locked_until = NULL, last_error = ?, ${ERASE_LINK} WHERE id = ? AND sent_at IS NULL`, [error.slice(0, 300), id])
      .catch((e) => this.options.log('error', 'e-mail failure not recorded', { id, error: errorText(e) }))
  }

  #maybeSettled() {
    if (this.#active.size > 0 || this.#claiming || (this.#more && !this.#stopped)) return
    for (const resolve of this.#settleWaiters.splice(0)) resolve()
  }

  /** Resolves once nothing is being claimed or sent and no claim is pending (tests). */
  settled(): Promise<void> {
    return new Promise((resolve) => {
      this.#settleWaiters.push(resolve)
      this.#maybeSettled()
    })
  }

  /**
   * Shutdown: takes no more rows, waits up to `waitMs` for the sends under
   * way, and gives back the rows still being sent then (due again at once,
   * the attempt not counted): the next start sends them. A server that
   * answers after that may have the message twice; none is lost.
   */
  async stop(waitMs: number) {
    if (this.#stopped) return
    this.#stopped = true
    if (this.#poll) clearInterval(this.#poll)
    this.#poll = null
    const inFlight = [...this.#active.values()]
    if (inFlight.length === 0) return
    let timer: NodeJS.Timeout | undefined
    await Promise.race([Promise.allSettled(inFlight), new Promise((resolve) => (timer = setTimeout(resolve, waitMs)))])
    clearTimeout(timer)
    const left = [...this.#active.keys()]
    if (left.length === 0) return
    this.options.log('warn', 'shutdown: e-mail still being sent given back to the outbox', { count: left.length })
    await db
      .rawQuery(
        `UPDATE mail_outbox SET locked_until = NULL, next_attempt_at = now(), attempts = greatest(attempts - 1, 0)
          WHERE id = ANY(?::bigint[]) AND sent_at IS NULL`,
        [`{${left.join(',')}}`]
      )
      .catch((error) => this.options.log('error', 'could not give e-mail back to the outbox (sent when its lease ends)', { error: errorText(error) }))
  }
}

/** Deletes sent rows older than SENT_KEPT_DAYS, and given-up ones after 30 days. */
export async function pruneSentMail() {
  await db.rawQuery(
    `DELETE FROM mail_outbox WHERE sent_at < now() - (? * interval '1 day') OR failed_at < now() - interval '30 days'`,
    [SENT_KEPT_DAYS]
  )
}

/** Numbers only: what the panel and /api/status show. */
export interface OutboxCounts {
  queued: number
  failed: number
  sent_today: number
}

export async function outboxCounts(): Promise<OutboxCounts> {
  const { rows } = await db.rawQuery(
    `SELECT count(*) FILTER (WHERE sent_at IS NULL AND failed_at IS NULL) AS queued,
            count(*) FILTER (WHERE failed_at IS NOT NULL) AS failed,
            count(*) FILTER (WHERE sent_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') AS sent_today
       FROM mail_outbox WHERE sent_at IS NULL OR sent_at >= now() - interval '1 day'`
  )
  const row = rows[0] ?? {}
  return { queued: Number(row.queued ?? 0), failed: Number(row.failed ?? 0), sent_today: Number(row.sent_today ?? 0) }
}

/** The panel's view of what waits or failed: header fields and the last error, never a body. */
export async function outboxProblems(limit = 20) {
  const { rows } = await db.rawQuery(
    `SELECT id, "to", subject, kind, attempts, created_at, next_attempt_at, failed_at, last_error, expires_at
       FROM mail_outbox WHERE sent_at IS NULL AND (failed_at IS NOT NULL OR last_error IS NOT NULL)
      ORDER BY coalesce(failed_at, next_attempt_at) DESC LIMIT ?`,
    [limit]
  )
  return rows as Array<{
    id: number
    to: string
    subject: string
    kind: string
    attempts: number
    created_at: Date
    next_attempt_at: Date
    failed_at: Date | null
    last_error: string | null
    expires_at: Date | null
  }>
}

