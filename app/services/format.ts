import { DateTime } from 'luxon'

/** Display formatting for the pages (numbers, money, dates), in one place. */

const integer = new Intl.NumberFormat('en-US')

export function formatInt(value: unknown): string {
  const n = Number(value ?? 0)
  return Number.isFinite(n) ? integer.format(n) : '0'
}

/** USD from an exact decimal string; small amounts keep enough digits to be non-zero. */
export function formatUsd(value: unknown, digits?: number): string {
  const n = Number(value ?? 0)
  if (!Number.isFinite(n)) return '$0'
  const abs = Math.abs(n)
  const d = digits ?? (abs === 0 ? 2 : abs < 0.01 ? 6 : abs < 1 ? 4 : 2)
  return `${n < 0 ? '-' : ''}$${abs.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d })}`
}

export function toDateTime(value: unknown): DateTime | null {
  if (!value) return null
  if (DateTime.isDateTime(value)) return value
  if (value instanceof Date) return DateTime.fromJSDate(value)
  const parsed = DateTime.fromISO(String(value))
  return parsed.isValid ? parsed : null
}

/** "2026-12-03 14:05:09" in UTC: operators compare times with logs. */
export function formatDateTime(value: unknown): string {
  const dt = toDateTime(value)
  return dt ? dt.toUTC().toFormat('yyyy-LL-dd HH:mm:ss') : '—'
}

export function formatDate(value: unknown): string {
  const dt = toDateTime(value)
  return dt ? dt.toUTC().toFormat('yyyy-LL-dd') : '—'
}

/** "3 min ago", "in 2 h" */
export function formatRelative(value: unknown): string {
  const dt = toDateTime(value)
  return dt ? (dt.toRelative({ style: 'short' }) ?? '—') : '—'
}

/** A duration in seconds as words: "45 seconds", "3 minutes". */
/** "45 seconds", "2 minutes" in English; "45 giây", "2 phút" in Vietnamese (Intl's unit names). */
export function formatWait(seconds: number, locale = 'en'): string {
  const [value, unit] = seconds < 60 ? [Math.max(1, Math.ceil(seconds)), 'second'] : [Math.ceil(seconds / 60), 'minute']
  return new Intl.NumberFormat(locale, { style: 'unit', unit, unitDisplay: 'long' }).format(value)
}

export function formatMs(value: unknown): string {
  if (value === null || value === undefined) return '—'
  const n = Number(value)
  return n >= 10_000 ? `${(n / 1000).toFixed(1)} s` : `${integer.format(Math.round(n))} ms`
}

const compact = new Intl.NumberFormat('en-US', { notation: 'compact', maximumFractionDigits: 1 })

/** 179620387 -> "179.6M": big counts in stat cards stay on one line on a phone. */
export function formatCompact(value: unknown): string {
  const n = Number(value ?? 0)
  return Number.isFinite(n) ? (Math.abs(n) < 10_000 ? integer.format(n) : compact.format(n)) : '0'
}
