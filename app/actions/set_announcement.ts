import db from '@adonisjs/lucid/services/db'
import { AdminInputError } from '#actions/admin_input_error'
import { writeAudit, type Actor } from '#actions/audit'
import { getSetting, putSetting } from '#services/app_settings'

/**
 * The operator's announcement (new-api's notice): one line shown at the top
 * of every portal and public page (a maintenance window, a price change, a
 * new model), set from the panel's Settings page or `announce:set`. Plain
 * text, in whatever language the operator writes it, with an optional link.
 */
export interface Announcement {
  text: string
  level: 'info' | 'warning'
  link: string | null
}

export const ANNOUNCEMENT_LEVELS = ['info', 'warning'] as const
const MAX_TEXT = 500

/** What the pages show, read at most every few seconds per process (every portal page asks). */
const FRESH_MS = 5_000
let cached: { value: Announcement | null; at: number } | null = null

export async function currentAnnouncement(): Promise<Announcement | null> {
  const now = Date.now()
  if (cached && now - cached.at < FRESH_MS) return cached.value
  const stored = await getSetting<Announcement | null>('announcement', null)
  const value = stored && typeof stored.text === 'string' && stored.text.trim() ? stored : null
  cached = { value, at: now }
  return value
}

/** Forgets the cached announcement (a test that empties app_settings under it). */
export function forgetAnnouncement() {
  cached = null
}

/** Sets the announcement; an empty text takes it down. Checked here for the panel and ace alike. */
export async function setAnnouncement(input: { text: string; level?: string; link?: string | null }, actor: Actor) {
  const text = input.text.replace(/\s+/g, ' ').trim()
  if (text.length > MAX_TEXT) throw new AdminInputError(`The announcement is ${text.length} characters; ${MAX_TEXT} at most`, 'text')
  const level = input.level || 'info'
  if (!(ANNOUNCEMENT_LEVELS as readonly string[]).includes(level)) throw new AdminInputError('Level: info or warning', 'level')
  const link = input.link?.trim() || null
  if (link !== null && (!/^https?:\/\/\S+$/i.test(link) || link.length > 300)) {
    throw new AdminInputError('Link: an http:// or https:// address (300 characters at most), or empty', 'link')
  }
  const value: Announcement | null = text ? { text, level: level as Announcement['level'], link } : null
  const before = await getSetting<Announcement | null>('announcement', null)
  await db.transaction(async (trx) => {
    await putSetting('announcement', value, trx)
    await writeAudit(trx, actor, {
      action: value ? 'settings.announcement' : 'settings.announcement_removed',
      subjectType: 'settings',
      subjectId: null,
      summary: value ? `Announcement (${value.level}): ${value.text.slice(0, 120)}` : 'Announcement taken down',
      before: before ? { ...before } : null,
      after: value ? { ...value } : null,
    })
  })
  cached = null
  return value
}
