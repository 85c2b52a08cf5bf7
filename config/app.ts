import env from '#start/env'
import { defineConfig } from '@adonisjs/core/http'
import { answerBadUrl } from '#gateway/http/bad_url'
import { trustedProxies } from '#services/trusted_proxies'

export const appUrl = env.get('APP_URL') ?? `http://${env.get('HOST')}:${env.get('PORT')}`

export const http = defineConfig({
  /** X-Forwarded-* believed only from TRUSTED_PROXIES (app/services/trusted_proxies.ts) */
  trustProxy: trustedProxies(env.get('TRUSTED_PROXIES')),
  generateRequestId: false,
  allowMethodSpoofing: true,
  useAsyncLocalStorage: false,
  onBadUrl: answerBadUrl,
  cookie: {
    domain: '',
    path: '/',
    maxAge: '2h',
    httpOnly: true,
    secure: env.get('COOKIE_SECURE') ?? false,
    sameSite: 'lax',
  },
})
