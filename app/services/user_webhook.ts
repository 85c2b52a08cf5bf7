import { createHmac, randomBytes } from 'node:crypto'
import { isIP } from 'node:net'
import { Agent, request } from 'undici'
import db from '@adonisjs/lucid/services/db'
import encryption from '@adonisjs/core/services/encryption'
import logger from '@adonisjs/core/services/logger'
import { addressCheckingLookup, isBlockedAddress } from '#services/blocked_addresses'

/**
 * A user's own webhook (new-api's "Webhook" notification): the low-balance
 * crossing and the spend-cap warnings of their keys are POSTed there as JSON
 * `{event, text, data, at}`, signed with a secret the portal shows once.
 *
 * Bounded on every side, since the URL is the user's: http or https only; no
 * redirect followed; 5 s for the whole exchange; at most 4 KB of the answer
 * read; at most 4 posts at once, MAX_QUEUED waiting. SSRF: the host is
 * resolved, every address checked against loopback, private, link-local and
 * the like (USER_WEBHOOK_ALLOW_PRIVATE=true allows them: tests, a LAN), and
 * the connection made to the address that was checked (the check runs in the
 * socket's own lookup, so a DNS answer cannot change between check and
 * connect). A failure costs a log line, never a request.
 */

export const WEBHOOK_URL_MAX = 2048
/** The signature header: `sha256=` and the HMAC-SHA256 hex of `<timestamp>.<body>` with the user's secret */
export const SIGNATURE_HEADER = 'x-gateway-signature'
/** Unix seconds when the body was signed (part of the signed text: a replayed old body can be refused) */
export const TIMESTAMP_HEADER = 'x-gateway-timestamp'

const TIMEOUT_MS = 5000
const MAX_ANSWER_BYTES = 4096
const MAX_QUEUED = 200

/** Read at each post (start/env.ts validates it at boot): a test turns it on and off around its cases. */
const allowPrivate = () => process.env.USER_WEBHOOK_ALLOW_PRIVATE === 'true'

/** The socket's lookup (blocked_addresses.ts): the address checked is the one connected to. */
const checkedLookup = addressCheckingLookup(() => !allowPrivate(), (message) => new WebhookRefused(message))

const agent = new Agent({
  connect: { lookup: checkedLookup as any, timeout: TIMEOUT_MS },
  headersTimeout: TIMEOUT_MS,
  bodyTimeout: TIMEOUT_MS,
  keepAliveTimeout: 1000,
  connections: 4,
})

/** A URL no post is tried to (the log line says why). */
export class WebhookRefused extends Error {}

/**
 * The URL as typed in the form: '' (off), or an http(s) URL of at most
 * WEBHOOK_URL_MAX characters, with a host, no user name or password, no
 * control character or space. Null: not one (the form says so).
 */
export function parseWebhookUrl(text: string): string | null {
  const trimmed = text.trim()
  if (trimmed === '') return ''
  if (trimmed.length > WEBHOOK_URL_MAX || /[\u0000-\u0020\u007f-\u009f]/.test(trimmed)) return null
  let url: URL
  try {
    url = new URL(trimmed)
  } catch {
    return null
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.hostname === '' || url.username || url.password) return null
  return url.href.length > WEBHOOK_URL_MAX ? null : url.href
}

/** Checks the URL's host before a post: an IP literal is never looked up by the socket, so it is checked here. */
function assertPostable(url: URL) {
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new WebhookRefused('only http and https')
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1')
  if (isIP(host) !== 0 && !allowPrivate() && isBlockedAddress(host)) {
    throw new WebhookRefused(`${host} is a private or local address`)
  }
}

/** `sha256=<hex>` of `<timestamp>.<body>`: what a receiver recomputes with the secret to trust the body. */
export function signature(secret: string, timestamp: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`
}

/** Saves the user's webhook ('' removes it); a new URL gets a new secret, returned to be shown once. */
export async function setUserWebhook(userId: number, url: string): Promise<{ secret: string | null }> {
  if (url === '') {
    await db.from('users').where('id', userId).update({ alert_webhook_url: null, alert_webhook_secret: null })
    return { secret: null }
  }
  const secret = `whsec_${randomBytes(24).toString('base64url')}`
  await db.from('users').where('id', userId).update({ alert_webhook_url: url, alert_webhook_secret: encryption.encrypt(secret) })
  return { secret }
}

/** The Billing page's view of it: the URL saved, or null. */
export async function userWebhookSetting(userId: number): Promise<string | null> {
  const row = await db.from('users').where('id', userId).select('alert_webhook_url').first()
  return row?.alert_webhook_url ?? null
}

export interface UserWebhookPayload {
  event: string
  text: string
  data: Record<string, unknown>
}

interface Queued {
  userId: number
  url: string
  secretEncrypted: string
  payload: UserWebhookPayload
}

const queue: Queued[] = []
/** Posts out at once: a webhook that never answers holds one for 5 s, not everyone's */
const CONCURRENCY = 4
const workers = new Set<Promise<void>>()
export const userWebhookStats = { sent: 0, failed: 0, dropped: 0 }

/**
 * Queues a post to the user's webhook (the row's url and encrypted secret,
 * as read with the alert); false when the queue is full. Never throws.
 */
export function queueUserWebhook(userId: number, url: string | null, secretEncrypted: string | null, payload: UserWebhookPayload): boolean {
  if (!url || !secretEncrypted) return false
  if (queue.length >= MAX_QUEUED) {
    userWebhookStats.dropped++
    logger.warn({ userId, event: payload.event }, 'user webhook dropped: the queue is full')
    return false
  }
  queue.push({ userId, url, secretEncrypted, payload })
  if (workers.size < CONCURRENCY) {
    const worker: Promise<void> = drain().finally(() => workers.delete(worker))
    workers.add(worker)
  }
  return true
}

/** Resolves once every queued post was sent or given up on (tests, shutdown). */
export async function userWebhooksIdle() {
  while (workers.size > 0) await Promise.all(workers)
}

async function drain() {
  while (queue.length > 0) {
    const next = queue.shift()!
    try {
      await postOnce(next)
      userWebhookStats.sent++
    } catch (error) {
      userWebhookStats.failed++
      logger.warn({ userId: next.userId, event: next.payload.event, error: (error as Error).message }, 'user webhook not delivered')
    }
  }
}

async function postOnce(item: Queued) {
  const url = new URL(item.url)
  assertPostable(url)
  const secret = encryption.decrypt<string>(item.secretEncrypted)
  if (!secret) throw new Error('the webhook secret cannot be read (APP_KEY changed?)')
  const body = JSON.stringify({ ...item.payload, at: new Date().toISOString() })
  const timestamp = String(Math.floor(Date.now() / 1000))
  const answer = await request(url, {
    method: 'POST',
    dispatcher: agent,
    headers: {
      'content-type': 'application/json',
      'user-agent': 'gateway-webhook',
      [TIMESTAMP_HEADER]: timestamp,
      [SIGNATURE_HEADER]: signature(secret, timestamp, body),
    },
    body,
    signal: AbortSignal.timeout(TIMEOUT_MS),
  })
  // Whatever the answer holds, at most a few KB of it is read (then the connection is dropped).
  await answer.body.dump({ limit: MAX_ANSWER_BYTES }).catch(() => {})
  if (answer.statusCode >= 300) throw new Error(`webhook answered HTTP ${answer.statusCode}`)
}
