import { request } from 'undici'
import type { StripeSettings } from '#services/payments/stripe_settings'

/** The fields of a Checkout Session the gateway reads (Stripe's API, 2024+ shapes). */
export interface CheckoutSession {
  id: string
  object?: string
  url: string | null
  /** open | complete | expired */
  status: string | null
  /** paid | unpaid | no_payment_required */
  payment_status: string
  amount_total: number | null
  currency: string | null
  client_reference_id: string | null
  metadata: Record<string, string> | null
}

/** Stripe refused or could not be reached; `message` is safe to log, not meant for end users. */
export class StripeError extends Error {
  constructor(
    message: string,
    readonly status: number | null = null,
    readonly type: string | null = null
  ) {
    super(message)
    this.name = 'StripeError'
  }
}

const TIMEOUT_MS = 15_000

/** Creates a Checkout Session; the idempotency key makes a retried call return the same session. */
export function createCheckoutSession(settings: StripeSettings, params: Record<string, string | number>, idempotencyKey: string) {
  return call<CheckoutSession>(settings, 'POST', '/v1/checkout/sessions', formEncode(params), idempotencyKey)
}

/** Reads a Checkout Session as Stripe has it now (the source of truth for "paid"). */
export function retrieveCheckoutSession(settings: StripeSettings, id: string) {
  return call<CheckoutSession>(settings, 'GET', `/v1/checkout/sessions/${encodeURIComponent(id)}`)
}

async function call<T>(settings: StripeSettings, method: 'GET' | 'POST', path: string, body?: string, idempotencyKey?: string): Promise<T> {
  const headers: Record<string, string> = { authorization: `Bearer ${settings.secretKey}` }
  if (body !== undefined) headers['content-type'] = 'application/x-www-form-urlencoded'
  if (idempotencyKey) headers['idempotency-key'] = idempotencyKey
  let answer
  try {
    answer = await request(`${settings.apiBase}${path}`, { method, headers, body, signal: AbortSignal.timeout(TIMEOUT_MS) })
  } catch (error) {
    throw new StripeError(`Stripe could not be reached: ${(error as Error).message}`)
  }
  const text = await answer.body.text()
  let parsed: any = null
  try {
    parsed = JSON.parse(text)
  } catch {}
  if (answer.statusCode >= 400 || !parsed || typeof parsed !== 'object') {
    const message = parsed?.error?.message ?? `Stripe answered HTTP ${answer.statusCode}`
    throw new StripeError(message, answer.statusCode, parsed?.error?.type ?? null)
  }
  return parsed as T
}

/** Stripe's form encoding: nested keys are written `a[b][0][c]` by the caller. */
function formEncode(params: Record<string, string | number>) {
  const form = new URLSearchParams()
  for (const [key, value] of Object.entries(params)) form.append(key, String(value))
  return form.toString()
}
