import { defineConfig } from '@adonisjs/shield'
import { checkoutFormSources } from '#services/payments/stripe_settings'
import { ssoFormSources } from '#services/sso/sso_settings'
import { knownAuthorizationOrigin } from '#services/sso/oidc_provider'

/**
 * Applied to the admin panel and portal only (start/kernel.ts `webStack`),
 * never to /v1 or /api/admin: those answer JSON and stay off this middleware.
 *
 * The pages load their CSS and JS from /assets (no CDN) and have two inline
 * scripts (the price preview, the docs page), which carry the request's nonce
 * (`nonce="{{ cspNonce }}"`). No inline event handlers, no style attributes:
 * scripts and styles from our own origin only. `data:` images are Pico's
 * checkbox/select icons and the layout's inline favicon. Forms post to this
 * origin, plus Stripe Checkout when card top-ups are on: the checkout form's
 * POST is answered with a redirect to Stripe, and Chromium applies
 * form-action to that redirect too; likewise the single sign-on providers
 * when they are on (the Security page's Link forms).
 */
const shieldConfig = defineConfig({
  csp: {
    enabled: true,
    directives: {
      defaultSrc: [`'self'`],
      scriptSrc: [`'self'`, '@nonce'],
      scriptSrcAttr: [`'none'`],
      styleSrc: [`'self'`],
      imgSrc: [`'self'`, 'data:'],
      objectSrc: [`'none'`],
      baseUri: [`'self'`],
      formAction: [`'self'`, () => [checkoutFormSources(), ssoFormSources(knownAuthorizationOrigin)].filter(Boolean).join(' ')],
      frameAncestors: [`'none'`],
    },
    reportOnly: false,
  },
  csrf: {
    enabled: true,
    exceptRoutes: [],
    enableXsrfCookie: false,
    methods: ['POST', 'PUT', 'PATCH', 'DELETE'],
  },
  xFrame: { enabled: true, action: 'DENY' },
  hsts: { enabled: false, maxAge: '180 days' },
  contentTypeSniffing: { enabled: true },
})

export default shieldConfig
