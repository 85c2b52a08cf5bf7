import { test } from '@japa/runner'
import { smtpTransportConfig } from '#services/mail/smtp_transport'
import type { SmtpSettings } from '#services/mail/smtp_env'

const server: SmtpSettings = { source: 'panel', host: 'smtp.example.com', port: 587, secure: false, user: null, password: null, from: 'noreply@example.com' }

test.group('SMTP transport options', () => {
  test('a user with a password authenticates; a user without one sends no AUTH (nodemailer would refuse every message)', ({ assert }) => {
    assert.deepEqual(smtpTransportConfig({ ...server, user: 'mailer', password: 'pw' }).auth, { type: 'login', user: 'mailer', pass: 'pw' })
    assert.isUndefined(smtpTransportConfig({ ...server, user: 'mailer', password: null }).auth)
    assert.isUndefined(smtpTransportConfig(server).auth)
  })

  test('short timeouts: a hung server holds a send for seconds', ({ assert }) => {
    const config = smtpTransportConfig({ ...server, secure: true, port: 465 }) as Record<string, unknown>
    assert.equal(config.secure, true)
    assert.equal(config.port, 465)
    assert.isAtMost(Number(config.connectionTimeout), 10_000)
    assert.isAtMost(Number(config.socketTimeout), 20_000)
  })
})
