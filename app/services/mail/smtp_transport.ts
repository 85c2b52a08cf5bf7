import type { SMTPConfig } from '@adonisjs/mail/types'
import type { SmtpSettings } from '#services/mail/smtp_env'

/**
 * Nodemailer's options for a server: short timeouts, so a server that hangs
 * holds a background send (or the panel's test) for seconds, not minutes.
 */
export function smtpTransportConfig(settings: SmtpSettings): SMTPConfig {
  return {
    host: settings.host,
    port: settings.port,
    secure: settings.secure,
    // A user without a password sends no AUTH (nodemailer would refuse to send at all: "Missing credentials").
    auth: settings.user && settings.password ? { type: 'login', user: settings.user, pass: settings.password } : undefined,
    connectionTimeout: 10_000,
    greetingTimeout: 10_000,
    socketTimeout: 20_000,
  }
}
