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

/**
 * Sources the pages' CSP `form-action` adds for card top-ups: Chromium checks
 * form-action on the redirects that follow a form's POST too, so Billing's
 * "Pay by card" form (POST here, 302 to the Checkout URL Stripe returned)
 * needs Stripe's Checkout origin, and the origin of STRIPE_API_BASE when it
 * points elsewhere (a test double serves its own checkout page). Empty when
 * card top-ups are off. Read per page (the tests turn Stripe on at run time).
 */
export function checkoutFormSources(): string {
  const settings = stripeSettings()
  if (!settings) return ''
  const sources = new Set(['https://checkout.stripe.com'])
  try {
    const api = new URL(settings.apiBase)
    if (api.origin !== 'https://api.stripe.com') sources.add(api.origin)
  } catch {
    // A malformed STRIPE_API_BASE fails the checkout call itself, not every page.
  }
  return [...sources].join(' ')
}
