import { userInfo } from 'node:os'
import type { TransactionClientContract } from '@adonisjs/lucid/types/database'

/**
 * Who made a change: an admin in the panel or the management API, whoever ran
 * an ace command, a user in the portal, Stripe (a payment's webhook), or the
 * gateway itself (`system`: the hourly usage retention).
 */
export interface Actor {
  id: number | null
  label: string
  source: 'panel' | 'cli' | 'portal' | 'api' | 'stripe' | 'system'
  ip?: string | null
}

/** The actor of an ace command: the OS user running it. */
export function cliActor(): Actor {
  let name = 'unknown'
  try {
    name = userInfo().username
  } catch {}
  return { id: null, label: `cli:${name}`, source: 'cli' }
}

export interface AuditEntry {
  /** "<subject>.<verb>": user.create, plan.delete, channel.disable, balance.topup… */
  action: string
  subjectType: string
  subjectId: number | null
  summary: string
  before?: Record<string, unknown> | null
  after?: Record<string, unknown> | null
}

/** Fields that must never reach the audit log (secrets), whatever a caller passes. */
const SECRET = /password|secret|^api_?key$|key_?hash|encrypted/i

function scrub(values: Record<string, unknown> | null | undefined) {
  if (!values) return null
  const clean: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(values)) {
    if (SECRET.test(k)) continue
    clean[k] = v
  }
  return clean
}

/**
 * Writes one audit row in the caller's transaction, so the change and its
 * record commit (or roll back) together.
 */
export async function writeAudit(trx: TransactionClientContract, actor: Actor, entry: AuditEntry) {
  const before = scrub(entry.before)
  const after = scrub(entry.after)
  await trx.table('audit_log').insert({
    actor_id: actor.id,
    actor: actor.label,
    source: actor.source,
    action: entry.action,
    subject_type: entry.subjectType,
    subject_id: entry.subjectId,
    summary: entry.summary,
    before: before ? JSON.stringify(before) : null,
    after: after ? JSON.stringify(after) : null,
    ip: actor.ip ?? null,
  })
}

/** "rpm: 60 → 120, models: * → gpt-*" for the fields that changed; "" when none did. */
export function describeChanges(before: Record<string, unknown>, after: Record<string, unknown>) {
  const parts: string[] = []
  for (const key of Object.keys(after)) {
    const a = show(before[key])
    const b = show(after[key])
    if (a !== b) parts.push(`${key}: ${a} → ${b}`)
  }
  return parts.join(', ')
}

function show(value: unknown): string {
  if (value === null || value === undefined || value === '') return '—'
  if (Array.isArray(value)) return value.join(',') || '—'
  if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
    return entries.length ? entries.map(([k, v]) => `${k}=${v}`).join(',') : '—'
  }
  return String(value)
}

/** Only the fields that differ, for the before/after columns. */
export function changedFields(before: Record<string, unknown>, after: Record<string, unknown>) {
  const b: Record<string, unknown> = {}
  const a: Record<string, unknown> = {}
  for (const key of Object.keys(after)) {
    if (show(before[key]) !== show(after[key])) {
      b[key] = before[key] ?? null
      a[key] = after[key] ?? null
    }
  }
  return { before: b, after: a }
}
