import type { I18n } from '@adonisjs/i18n'
import type { DateTime } from 'luxon'

/** The language picker's choice, remembered for a year (plain cookie: read before any session). */
export const LOCALE_COOKIE = 'locale'

/** Display names of the supported languages, each in its own language (the picker). */
export const LOCALE_NAMES: Record<string, string> = { en: 'English', vi: 'Tiếng Việt' }

type DateLike = string | number | Date | DateTime

/**
 * Number, money and date formatting in the page's language. Money is USD
 * with at least 2 and at most 6 decimals (per-request costs are fractions of
 * a cent); dates are shown in UTC, like the API.
 */
export function localeFormatters(i18n: I18n) {
  return {
    number: (value: string | number | bigint) => i18n.formatNumber(value),
    money: (value: string | number | null | undefined) =>
      i18n.formatCurrency(value ?? 0, { currency: 'USD', minimumFractionDigits: 2, maximumFractionDigits: 6 }),
    /** For figures in cards: cents for amounts from $1, more digits below so they never read 0 */
    moneyShort: (value: string | number | null | undefined) => {
      const abs = Math.abs(Number(value ?? 0))
      const digits = abs >= 1 || abs === 0 ? 2 : abs >= 0.01 ? 4 : 6
      return i18n.formatCurrency(value ?? 0, { currency: 'USD', minimumFractionDigits: 2, maximumFractionDigits: digits })
    },
    percent: (ratio: number) => i18n.formatNumber(ratio, { style: 'percent', maximumFractionDigits: 1 }),
    date: (value: DateLike) => i18n.formatDate(value, { dateStyle: 'medium', timeZone: 'UTC' }),
    dateTime: (value: DateLike) =>
      i18n.formatDate(value, { dateStyle: 'short', timeStyle: 'medium', timeZone: 'UTC', hour12: false }),
  }
}

export type LocaleFormatters = ReturnType<typeof localeFormatters>
