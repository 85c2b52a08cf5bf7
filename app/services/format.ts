import { DateTime } from 'luxon'
import { fromPico, toPico } from '#gateway/metering/money'

/** Display formatting for the pages (numbers, money, dates), in one place. */

const integer = new Intl.NumberFormat('en-US')

export function formatInt(value: unknown): string {
  const n = Number(value ?? 0)
  return Number.isFinite(n) ? integer.format(n) : '0'
}

/**
 * Money on the pages: one rule per kind of figure, shared by the admin panel
 * (en-US, below) and the portal (the page's language, services/locale.ts).
 *
 * - 'total': summary figures (cards, balances, spend, money columns of
 *   totals): cents for any amount of at least one cent ($4.73, $0.57); a
 *   non-zero amount under a cent keeps two significant digits, at most 6
 *   decimals ($0.0042, $0.000031) so it never reads $0.00; zero is $0.00.
 * - 'cost': one request's cost, or one ledger movement, in a column of them:
 *   always 6 decimals (micro-USD: $0.002200, $1.234567, $10.000000), so the
 *   whole column lines up and reads alike.
 * - 'exact': the amount as stored, trailing zeros trimmed, at least 2
 *   decimals: prices as configured ($0.075 per 1M, $2.50) and a single
 *   exact amount ($0.00009255).
 *
 * 'total' and 'cost' show nothing below $0.000001: a non-zero amount under it
 * reads "<$0.000001" (">-$0.000001" when negative), never as zero.
 * CSV exports and the API keep the exact decimal strings.
 */
export type MoneyKind = 'total' | 'cost' | 'exact'

export interface MoneyDigits {
  minimumFractionDigits: number
  maximumFractionDigits: number
}

/** Formats an amount (a number, or an exact decimal string) as USD with these digits. */
export type UsdFormatter = (amount: number | string, digits: MoneyDigits) => string

/** The smallest amount 'total' and 'cost' show digits for (6 decimals). */
export const SMALLEST_SHOWN_USD = 0.000001

/** The fraction digits of an amount of this size ('exact': up to the 12 the database stores). */
export function moneyDigits(kind: MoneyKind, amount: number): MoneyDigits {
  if (kind === 'cost') return { minimumFractionDigits: 6, maximumFractionDigits: 6 }
  if (kind === 'exact') return { minimumFractionDigits: 2, maximumFractionDigits: 12 }
  const abs = Math.abs(amount)
  if (abs === 0 || abs >= 0.01) return { minimumFractionDigits: 2, maximumFractionDigits: 2 }
  // Two significant digits: 0.0042 -> 4 decimals, 0.000031 -> 6
  return { minimumFractionDigits: 2, maximumFractionDigits: Math.min(6, Math.max(2, 1 - Math.floor(Math.log10(abs)))) }
}

/** The money rule above, with the formatter of a language (the portal's i18n.formatCurrency) or en-US. */
export function formatMoney(value: unknown, kind: MoneyKind, format: UsdFormatter = enUsd): string {
  const text = typeof value === 'string' ? value.trim() : value
  const n = Number(text ?? 0)
  if (!Number.isFinite(n) || n === 0) return format(0, moneyDigits(kind, 0))
  if (kind === 'exact') return format(typeof text === 'string' ? text : n, moneyDigits(kind, n))
  if (Math.abs(n) < SMALLEST_SHOWN_USD) {
    return n < 0 ? '>' + format(-SMALLEST_SHOWN_USD, moneyDigits(kind, SMALLEST_SHOWN_USD)) : '<' + format(SMALLEST_SHOWN_USD, moneyDigits(kind, SMALLEST_SHOWN_USD))
  }
  return format(n, moneyDigits(kind, n))
}

const usdFormats = new Map<string, Intl.NumberFormat>()

/** en-US dollars; a decimal string is formatted exactly (Intl reads it as a decimal, not a float). */
function enUsd(amount: number | string, digits: MoneyDigits): string {
  const key = `${digits.minimumFractionDigits}-${digits.maximumFractionDigits}`
  let nf = usdFormats.get(key)
  if (!nf) usdFormats.set(key, (nf = new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD', ...digits })))
  return nf.format(amount as number)
}

/** A summary figure: "$4.73", "$0.57", "$0.0042", "$0.00". */
export function formatUsd(value: unknown): string {
  return formatMoney(value, 'total')
}

/** One request's cost or one ledger movement, in a column of them: "$0.002200". */
export function formatCost(value: unknown): string {
  return formatMoney(value, 'cost')
}

/** A price or a single exact amount, as stored: "$0.075", "$2.50", "$0.00009255". */
export function formatUsdExact(value: unknown): string {
  return formatMoney(value, 'exact')
}

/** An amount as a form field shows it: 25.000000000000 -> "25", 0.500000000000 -> "0.5" */
export function plainAmount(value: unknown): string {
  const text = String(value ?? '')
  return text.includes('.') ? text.replace(/\.?0+$/, '') || '0' : text
}

/** The exact sum of decimal strings (prices: input + output per 1M), as a decimal string. */
export function sumUsd(...values: Array<string | number | null | undefined>): string {
  return fromPico(values.reduce<bigint>((sum, v) => sum + toPico(v ?? 0), 0n))
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
/** "45 seconds", "2 minutes" in English; "45 giây", "2 phút" in Vietnamese; "45秒钟", "2分钟" in Chinese (Intl's unit names). */
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
