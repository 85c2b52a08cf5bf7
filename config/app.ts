import env from '#start/env'
import { defineConfig } from '@adonisjs/core/http'
import { answerBadUrl } from '#gateway/http/bad_url'

export const appUrl = env.get('APP_URL') ?? `http://${env.get('HOST')}:${env.get('PORT')}`

export const http = defineConfig({
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
