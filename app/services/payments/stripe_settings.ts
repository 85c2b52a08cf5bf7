import env from '#start/env'

/** What card top-ups need; read when a page or the webhook needs them (never on /v1). */
export interface StripeSettings {
  secretKey: string
  /** whsec_...: without it the webhook refuses every event (payments still settle on the user's return) */
  webhookSecret: string | null
  /** https://api.stripe.com unless pointed elsewhere (a test double, a proxy) */
  apiBase: string
  minUsd: number
  maxUsd: number
}

const DEFAULT_MIN_USD = 5
const DEFAULT_MAX_USD = 1000

/** Card top-ups are on when STRIPE_SECRET_KEY is set; null otherwise. */
export function stripeSettings(): StripeSettings | null {
  const secretKey = env.get('STRIPE_SECRET_KEY')
  if (!secretKey) return null
  const minUsd = env.get('TOPUP_MIN_USD') ?? DEFAULT_MIN_USD
  return {
    secretKey,
    webhookSecret: env.get('STRIPE_WEBHOOK_SECRET') || null,
    apiBase: (env.get('STRIPE_API_BASE') || 'https://api.stripe.com').replace(/\/+$/, ''),
    minUsd,
    maxUsd: Math.max(minUsd, env.get('TOPUP_MAX_USD') ?? DEFAULT_MAX_USD),
  }
}
