import type { HttpContext } from '@adonisjs/core/http'
import env from '#start/env'
import { requestBaseUrl } from '#controllers/pages/docs_controller'

/**
 * The address the links in e-mails start with: APP_URL when set, else the
 * one the visitor reached us at (as the referral link). Set APP_URL in
 * production: without it the link follows the request's Host header, which
 * whoever asks for a reset link chooses.
 */
export function siteBase(request: HttpContext['request']): string {
  return env.get('APP_URL')?.replace(/\/+$/, '') || requestBaseUrl(request)
}
