import type { I18n } from '@adonisjs/i18n'
import type { DateTime } from 'luxon'
import { formatMoney, type UsdFormatter } from '#services/format'

/** The language picker's choice, remembered for a year (plain cookie: read before any session). */
export const LOCALE_COOKIE = 'locale'

/** Display names of the supported languages, each in its own language (the picker). */
export const LOCALE_NAMES: Record<string, string> = { en: 'English', vi: 'Tiếng Việt', zh: '简体中文' }

/**
 * The BCP 47 tag of a language where it says more than its code (html
 * lang, the picker's lang/hreflang): zh is Simplified Chinese, so browsers
 * pick Simplified glyphs and screen readers the right voice.
 */
export const LOCALE_TAGS: Record<string, string> = { zh: 'zh-CN' }

export const localeTag = (locale: string) => LOCALE_TAGS[locale] ?? locale

type DateLike = string | number | Date | DateTime

/**
 * Number, money and date formatting in the page's language. Money follows
 * the panel's rule (formatMoney in services/format.ts): `money` for summary
 * figures (cents; more digits only under a cent), `cost` for one request's
 * cost in a column of them (6 decimals), `exact` for prices and exact
 * amounts. Dates are shown in UTC, like the API.
 */
export function localeFormatters(i18n: I18n) {
  const usd: UsdFormatter = (amount, digits) => i18n.formatCurrency(amount, { currency: 'USD', ...digits })
  const money = (value: string | number | null | undefined) => formatMoney(value, 'total', usd)
  return {
    number: (value: string | number | bigint) => i18n.formatNumber(value),
    money,
    /** The same as money (the name the stat cards used before money had one rule) */
    moneyShort: money,
    cost: (value: string | number | null | undefined) => formatMoney(value, 'cost', usd),
    exact: (value: string | number | null | undefined) => formatMoney(value, 'exact', usd),
    percent: (ratio: number) => i18n.formatNumber(ratio, { style: 'percent', maximumFractionDigits: 1 }),
    date: (value: DateLike) => i18n.formatDate(value, { dateStyle: 'medium', timeZone: 'UTC' }),
    dateTime: (value: DateLike) =>
      i18n.formatDate(value, { dateStyle: 'short', timeStyle: 'medium', timeZone: 'UTC', hour12: false }),
  }
}

export type LocaleFormatters = ReturnType<typeof localeFormatters>
