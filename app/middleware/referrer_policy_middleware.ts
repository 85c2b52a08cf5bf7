import type { HttpContext } from '@adonisjs/core/http'
import type { NextFn } from '@adonisjs/core/types/http'

/**
 * Pages only (webStack): page URLs carry user ids, e-mails in filters and
 * request ids, so another site reached from a page (a link, Stripe Checkout)
 * gets no Referer at all; our own pages still get the full one (same-origin).
 * Shield 9 has no option for this header.
 */
export default class ReferrerPolicyMiddleware {
  handle({ response }: HttpContext, next: NextFn) {
    response.header('Referrer-Policy', 'same-origin')
    return next()
  }
}
