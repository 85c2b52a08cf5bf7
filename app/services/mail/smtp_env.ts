import env from '#start/env'

/**
 * The SMTP server the environment names (config/mail.ts reads it at boot;
 * app/services/mail/smtp_settings.ts puts it before the panel's). Kept apart
 * from the settings so the config file imports no database or encryption.
 */
export interface SmtpSettings {
  source: 'env' | 'panel'
  host: string
  port: number
  /** TLS from the first byte (port 465); otherwise STARTTLS when the server offers it */
  secure: boolean
  user: string | null
  password: string | null
  from: string
}

/** The environment's server, or null when it names none. Throws on a malformed SMTP_URL (read at boot by config/mail.ts). */
export function smtpFromEnv(): SmtpSettings | null {
  const url = env.get('SMTP_URL')?.trim()
  const from = env.get('MAIL_FROM')?.trim() || ''
  if (url) {
    let parsed: URL
    try {
      parsed = new URL(url)
    } catch {
      throw new Error('SMTP_URL must look like smtp://user:password@host:587 or smtps://user:password@host:465')
    }
    if (parsed.protocol !== 'smtp:' && parsed.protocol !== 'smtps:') throw new Error('SMTP_URL must start with smtp:// or smtps://')
    const secure = parsed.protocol === 'smtps:'
    const user = parsed.username ? decodeURIComponent(parsed.username) : null
    return {
      source: 'env',
      host: parsed.hostname.replace(/^\[|\]$/g, ''),
      port: parsed.port ? Number(parsed.port) : secure ? 465 : 587,
      secure,
      user,
      password: parsed.password ? decodeURIComponent(parsed.password) : null,
      from: from || user || '',
    }
  }
  const host = env.get('SMTP_HOST')?.trim()
  if (!host) return null
  const secure = env.get('SMTP_SECURE') ?? env.get('SMTP_PORT') === 465
  const user = env.get('SMTP_USER')?.trim() || null
  return {
    source: 'env',
    host,
    port: env.get('SMTP_PORT') ?? (secure ? 465 : 587),
    secure,
    user,
    password: env.get('SMTP_PASSWORD') || null,
    from: from || user || '',
  }
}

