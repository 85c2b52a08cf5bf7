import logger from '@adonisjs/core/services/logger'
import emitter from '@adonisjs/core/services/emitter'
import db from '@adonisjs/lucid/services/db'
import edge from 'edge.js'
import { Mailer } from '@adonisjs/mail'
import { SMTPTransport } from '@adonisjs/mail/transports/smtp'
import type { QueryClientContract, TransactionClientContract } from '@adonisjs/lucid/types/database'
import { smtpSettings, type SmtpSettings } from '#services/mail/smtp_settings'
import { smtpTransportConfig } from '#services/mail/smtp_transport'

/**
 * Sending e-mail without holding up the request that asked for it, and
 * without losing it: a page queues a message and answers at once; the
 * message is rendered (Edge, resources/views/emails/<view>_html and _text)
 * and stored as a row of `mail_outbox` (migration 1023), and each
 * instance's sender (mail_sender.ts) sends it, retrying while the SMTP
 * server is down. A restart or a shutdown leaves queued rows for the next
 * start; two instances never send one row twice. A failed send is logged
 * and shown in Settings > E-mail, never to the visitor (the panel's "Send
 * test e-mail" sends directly, to show what went wrong).
 */
export interface OutgoingMail {
  to: string
  /** The product name, shown as the sender's name */
  senderName: string
  subject: string
  /** resources/views/emails/<view>_html.edge and _text.edge */
  view: string
  data: Record<string, unknown>
  /**
   * The message carries a live credential (a reset or confirmation link)
   * good until then: it is not sent later, and its stored body is erased
   * once sent, given up on or expired.
   */
  expiresAt?: Date
}

/** What the outbox keeps of a header field (the columns' sizes): a 1 MB subject is cut, not stored. */
const SUBJECT_MAX = 300
const SENDER_NAME_MAX = 200
const ADDRESS_MAX = 320
/** Renders and inserts under way at once (queueMail's background work); past it a message is dropped with a warning. */
const MAX_PENDING = 500

/**
 * A header field as one line: control characters (CR, LF, NUL...) become
 * spaces, so nothing a message's subject or sender name carries can start a
 * header of its own; cut to `max` characters.
 */
export function headerField(text: string, max: number): string {
  return String(text)
    .replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g, ' ')
    .trim()
    .slice(0, max)
}

/** One recipient address, or null: no control characters, spaces or list separators (a second recipient), at most 320 characters. */
export function singleAddress(text: string): string | null {
  const address = String(text).trim()
  if (address.length === 0 || address.length > ADDRESS_MAX) return null
  if (/[\u0000-\u0020\u007f-\u009f,;<>()"\\\u2028\u2029]/.test(address)) return null
  if (!/^[^@]+@[^@]+$/.test(address)) return null
  return address
}

/** A rendered message, as the outbox stores it. */
export interface RenderedMail {
  to: string
  senderName: string
  subject: string
  html: string
  text: string
  kind: string
}

/** Renders a message's templates and makes its header fields safe; null when its address is not one address. */
export async function renderMail(mail: OutgoingMail): Promise<RenderedMail | null> {
  const to = singleAddress(mail.to)
  if (!to) return null
  const [html, text] = await Promise.all([edge.render(`emails/${mail.view}_html`, mail.data), edge.render(`emails/${mail.view}_text`, mail.data)])
  return {
    to,
    senderName: headerField(mail.senderName, SENDER_NAME_MAX),
    subject: headerField(mail.subject, SUBJECT_MAX),
    html,
    text,
    kind: headerField(mail.view, 64),
  }
}

/** Told when a row is queued in this process (the sender wakes without waiting for its poll). */
let onQueued: (() => void) | null = null

/** The sender of this process (providers/gateway_provider.ts) listens here. */
export function whenMailQueued(listener: (() => void) | null) {
  onQueued = listener
}

/**
 * Stores a message in the outbox, in `client`'s transaction when given (a
 * reset link and its message commit together or not at all); the sender is
 * woken once it is committed. Throws when the address is not one address.
 */
export async function enqueueMail(mail: OutgoingMail, client: QueryClientContract | TransactionClientContract = db.connection()): Promise<number> {
  const rendered = await renderMail(mail)
  if (!rendered) throw new Error('The recipient is not one e-mail address')
  const [row] = await client
    .insertQuery()
    .table('mail_outbox')
    .insert({
      to: rendered.to,
      sender_name: rendered.senderName,
      subject: rendered.subject,
      html: rendered.html,
      text: rendered.text,
      kind: rendered.kind,
      expires_at: mail.expiresAt ?? null,
    })
    .returning('id')
  const wake = () => onQueued?.()
  if ('isTransaction' in client && client.isTransaction) (client as TransactionClientContract).after('commit', wake)
  else wake()
  return Number(row.id ?? row)
}

let pending = 0
let idleWaiters: Array<() => void> = []

/**
 * Queues a message (rendered and stored in the background, right away);
 * false when it is refused: its address is not one address, or too many
 * messages are being stored at once (dropped and logged).
 */
export function queueMail(mail: OutgoingMail): boolean {
  if (!singleAddress(mail.to)) {
    logger.warn({ view: mail.view }, 'e-mail dropped: the recipient is not one address')
    return false
  }
  if (pending >= MAX_PENDING) {
    logger.warn({ view: mail.view }, 'e-mail dropped: too many messages being queued at once')
    return false
  }
  pending++
  enqueueMail(mail)
    .catch((error) => logger.error({ view: mail.view, error: errorText(error) }, 'e-mail not queued'))
    .finally(() => {
      pending--
      settle()
    })
  return true
}

/**
 * Runs work that decides whether to send (an account lookup, a link made)
 * after the answer: a form that must answer the same whether or not an
 * account exists then answers in the same time too. Failures are logged.
 */
let tasks = 0
export function inBackground(label: string, task: () => Promise<unknown>) {
  tasks++
  setImmediate(() => {
    task()
      .catch((error) => logger.error({ task: label, error: errorText(error) }, 'e-mail task failed'))
      .finally(() => {
        tasks--
        settle()
      })
  })
}

/** What outboxIdle waits for once the background work is done: this process's sender has nothing due left. */
let senderSettled: () => Promise<void> = () => Promise.resolve()

export function setSenderSettled(settled: () => Promise<void>) {
  senderSettled = settled
}

function settle() {
  if (pending > 0 || tasks > 0) return
  const waiters = idleWaiters
  idleWaiters = []
  for (const resolve of waiters) resolve()
}

/** Resolves once the messages queued here are stored (or failed to be), at most after `ms` (shutdown). */
export async function mailStored(ms: number): Promise<void> {
  if (pending === 0 && tasks === 0) return
  let timer: NodeJS.Timeout | undefined
  await Promise.race([
    new Promise<void>((resolve) => idleWaiters.push(resolve)),
    new Promise<void>((resolve) => (timer = setTimeout(resolve, ms))),
  ])
  clearTimeout(timer)
}

/**
 * Resolves once every message queued here is stored and the sender has
 * tried every due row (sent, or failed and scheduled again) (tests).
 */
export async function outboxIdle(): Promise<void> {
  if (pending > 0 || tasks > 0) await new Promise<void>((resolve) => idleWaiters.push(resolve))
  await senderSettled()
}

/** Sends one message now through the configured server; throws when e-mail is off or the server refuses. */
export async function sendMail(mail: OutgoingMail, settings?: SmtpSettings | null) {
  const rendered = await renderMail(mail)
  if (!rendered) throw new Error('The recipient is not one e-mail address')
  await deliverMail(rendered, settings)
}

/** Sends a rendered message through the configured server (the outbox's sender, the panel's test). */
export async function deliverMail(mail: RenderedMail, settings?: SmtpSettings | null) {
  const server = settings === undefined ? await smtpSettings() : settings
  if (!server) throw new Error('No SMTP server is configured')
  const mailer = await mailerFor(server)
  await mailer.send((message) => {
    message.to(mail.to).from(server.from, mail.senderName).subject(mail.subject).html(mail.html).text(mail.text)
  })
}

/** What a failed send says, for the log and the panel (never the SMTP password: nodemailer does not echo it). */
export function errorText(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error)
  return text.replace(/[\u0000-\u001f\u007f]+/g, ' ').slice(0, 300)
}

/**
 * The environment's server goes through the mailer config/mail.ts defines;
 * a panel's through one made for its settings, replaced (and the old one's
 * connections closed) when they change.
 */
let panelMailer: { key: string; mailer: Mailer<SMTPTransport> } | null = null

async function mailerFor(server: SmtpSettings): Promise<Mailer<SMTPTransport>> {
  if (server.source === 'env') {
    const { default: mail } = await import('@adonisjs/mail/services/main')
    return mail.use('smtp')
  }
  const key = JSON.stringify(server)
  if (panelMailer?.key !== key) {
    const old = panelMailer
    panelMailer = { key, mailer: new Mailer('panel', new SMTPTransport(smtpTransportConfig(server)), emitter as any) }
    old?.mailer.close().catch(() => {})
  }
  return panelMailer.mailer
}
