import { defineConfig, transports } from '@adonisjs/mail'
import { smtpFromEnv } from '#services/mail/smtp_env'
import { smtpTransportConfig } from '#services/mail/smtp_transport'

/**
 * The mailer of the environment's SMTP server (SMTP_URL or SMTP_HOST...,
 * MAIL_FROM). A server set in the panel instead gets its own mailer, made
 * when the settings change (app/services/mail/mail_outbox.ts). Nothing is
 * connected until a message is sent.
 */
const fromEnv = smtpFromEnv()

const mailConfig = defineConfig({
  default: 'smtp',
  from: fromEnv?.from || undefined,
  mailers: {
    smtp: transports.smtp(fromEnv ? smtpTransportConfig(fromEnv) : { host: '127.0.0.1', port: 25 }),
  },
})

export default mailConfig

declare module '@adonisjs/mail/types' {
  export interface MailersList extends InferMailers<typeof mailConfig> {}
}
