import { createHmac, timingSafeEqual } from 'node:crypto'

/** Stripe's default: an event signed more than five minutes ago is a replay. */
const TOLERANCE_S = 300

/**
 * Checks a `Stripe-Signature` header (`t=<unix s>,v1=<hex>[,v1=...]`) over
 * the raw request body, as Stripe's libraries do: HMAC-SHA256 of
 * `<t>.<body>` with the endpoint's signing secret, any `v1` may match (two
 * while a secret is rolled), and the timestamp within five minutes.
 * Returns null when the event is genuine, else why not.
 */
export function stripeSignatureProblem(raw: Buffer, header: string | undefined, secret: string, nowMs = Date.now()): string | null {
  if (!header) return 'no Stripe-Signature header'
  let timestamp = NaN
  const signatures: Buffer[] = []
  for (const part of header.split(',')) {
    const eq = part.indexOf('=')
    if (eq < 0) continue
    const name = part.slice(0, eq).trim()
    const value = part.slice(eq + 1).trim()
    if (name === 't') timestamp = Number(value)
    else if (name === 'v1' && /^[0-9a-f]{64}$/i.test(value)) signatures.push(Buffer.from(value, 'hex'))
  }
  if (!Number.isInteger(timestamp)) return 'no timestamp in Stripe-Signature'
  if (signatures.length === 0) return 'no v1 signature in Stripe-Signature'
  const expected = createHmac('sha256', secret).update(`${timestamp}.`).update(raw).digest()
  if (!signatures.some((s) => timingSafeEqual(s, expected))) return 'signature does not match'
  if (Math.abs(nowMs / 1000 - timestamp) > TOLERANCE_S) return 'timestamp outside the tolerance (replayed event?)'
  return null
}
