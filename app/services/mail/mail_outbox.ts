import logger from '@adonisjs/core/services/logger'
import emitter from '@adonisjs/core/services/emitter'
import { Mailer } from '@adonisjs/mail'
import { SMTPTransport } from '@adonisjs/mail/transports/smtp'
import { smtpSettings, type SmtpSettings } from '#services/mail/smtp_settings'
import { smtpTransportConfig } from '#services/mail/smtp_transport'

/**
 * Sending e-mail without holding up the request that asked for it: a page
 * queues a message and answers at once; the message is rendered (Edge,
 * resources/views/emails/<view>_html and _text) and sent in the background,
 * two at a time. A failed send is logged, never shown to the visitor (the
 * panel's "Send test e-mail" sends directly, to show what went wrong). The
 * queue is bounded: past MAX_QUEUED a message is dropped with a warning
 * rather than letting a flood of requests hold memory.
 */
export interface OutgoingMail {
  to: string
  /** The product name, shown as the sender's name */
  senderName: string
  subject: string
  /** resources/views/emails/<view>_html.edge and _text.edge */
  view: string
  data: Record<string, unknown>
}

const CONCURRENCY = 2
const MAX_QUEUED = 500

const queue: OutgoingMail[] = []
let running = 0
let idleWaiters: Array<() => void> = []

/** Queues a message; false when the queue is full (the message is dropped and logged). */
export function queueMail(mail: OutgoingMail): boolean {
  if (queue.length >= MAX_QUEUED) {
    logger.warn({ view: mail.view }, 'e-mail dropped: the outgoing queue is full')
    return false
  }
  queue.push(mail)
  pump()
  return true
}

function pump() {
  while (running < CONCURRENCY && queue.length) {
    const mail = queue.shift()!
    running++
    sendMail(mail)
      .catch((error) => logger.error({ view: mail.view, error: errorText(error) }, 'e-mail not sent'))
      .finally(() => {
        running--
        pump()
      })
  }
  if (running === 0 && tasks === 0 && queue.length === 0) {
    const waiters = idleWaiters
    idleWaiters = []
    for (const resolve of waiters) resolve()
  }
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
        pump()
      })
  })
}

/** Resolves once every queued message has been sent or has failed (tests; shutdown). */
export function outboxIdle(): Promise<void> {
  if (running === 0 && tasks === 0 && queue.length === 0) return Promise.resolve()
  return new Promise((resolve) => idleWaiters.push(resolve))
}

/** Sends one message now through the configured server; throws when e-mail is off or the server refuses. */
export async function sendMail(mail: OutgoingMail, settings?: SmtpSettings | null) {
  const server = settings === undefined ? await smtpSettings() : settings
  if (!server) throw new Error('No SMTP server is configured')
  const mailer = await mailerFor(server)
  await mailer.send((message) => {
    message
      .to(mail.to)
      .from(server.from, mail.senderName)
      .subject(mail.subject)
      .htmlView(`emails/${mail.view}_html`, mail.data)
      .textView(`emails/${mail.view}_text`, mail.data)
  })
}

/** What a failed send says, for the log and the panel's test (never the SMTP password: nodemailer does not echo it). */
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
