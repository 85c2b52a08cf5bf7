import db from '@adonisjs/lucid/services/db'
import env from '#start/env'

/**
 * Operator settings kept in the database (table app_settings) so the admin
 * panel can change them at run time. Read on the pages that need them, never
 * on the API hot path.
 */
export async function getSetting<T>(key: string, fallback: T, client: Pick<typeof db, 'from'> = db): Promise<T> {
  const row = await client.from('app_settings').where('key', key).first()
  return row ? (row.value as T) : fallback
}

/** Writes a setting; `client` puts it in the caller's transaction (with its audit row). */
export async function putSetting(key: string, value: unknown, client: Pick<typeof db, 'table'> = db) {
  await client
    .table('app_settings')
    .insert({ key, value: JSON.stringify(value), updated_at: new Date() })
    .onConflict('key')
    .merge()
}

/**
 * Self-service registration: ALLOW_REGISTRATION=false closes it whatever the
 * panel says; otherwise the panel's "registration open" setting decides
 * (open by default).
 */
export async function registrationOpen(): Promise<boolean> {
  if (env.get('ALLOW_REGISTRATION') === false) return false
  return getSetting('registration_open', true)
}

export async function setRegistrationOpen(open: boolean) {
  await putSetting('registration_open', open)
}
