import { test } from '@japa/runner'
import { readdirSync, readFileSync } from 'node:fs'
import app from '@adonisjs/core/services/app'
import i18nManager from '@adonisjs/i18n/services/main'

/** Every key of every resources/lang/<locale>/*.json file, flattened ("docs.health.title"). */
function keysOf(locale: string): Map<string, string> {
  const keys = new Map<string, string>()
  const walk = (prefix: string, value: unknown) => {
    if (value && typeof value === 'object') for (const [k, v] of Object.entries(value)) walk(`${prefix}.${k}`, v)
    else keys.set(prefix, String(value))
  }
  const dir = app.languageFilesPath(locale)
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.json'))) {
    walk(file.slice(0, -5), JSON.parse(readFileSync(`${dir}/${file}`, 'utf8')))
  }
  return keys
}

/** The lang files of a language ("docs.json", …). */
const filesOf = (locale: string) => readdirSync(app.languageFilesPath(locale)).filter((f) => f.endsWith('.json'))

/** The {placeholders} of an ICU message. */
const placeholders = (message: string) => [...message.matchAll(/\{(\w+)\s*[,}]/g)].map((m) => m[1]).sort()

/** Every literal key passed to t() / i18n.t() in templates and app code. */
function keysUsed(): Set<string> {
  const used = new Set<string>()
  const scan = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = `${dir}/${entry.name}`
      if (entry.isDirectory()) scan(path)
      else if (/\.(edge|ts)$/.test(entry.name)) {
        for (const m of readFileSync(path, 'utf8').matchAll(/\bt\(\s*'([a-z_]+\.[A-Za-z0-9_.]+)'/g)) used.add(m[1])
      }
    }
  }
  scan(app.makePath('resources/views'))
  scan(app.makePath('app'))
  return used
}

test.group('Translations', () => {
  test('every key exists in every language, with the same placeholders', ({ assert }) => {
    const locales = i18nManager.supportedLocales()
    assert.sameMembers(locales, ['en', 'vi', 'zh'])
    // Every folder under resources/lang is a supported language (a new one is not forgotten in config/i18n.ts)
    const folders = readdirSync(app.languageFilesPath(), { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name)
    assert.sameMembers(folders, locales)
    const reference = keysOf('en')
    const referenceFiles = filesOf('en')
    for (const locale of locales) {
      assert.sameMembers(filesOf(locale), referenceFiles, `lang files of ${locale}`)
      const keys = keysOf(locale)
      const missing = [...reference.keys()].filter((k) => !keys.has(k))
      const extra = [...keys.keys()].filter((k) => !reference.has(k))
      assert.deepEqual(missing, [], `keys missing in ${locale}`)
      assert.deepEqual(extra, [], `keys in ${locale} but not in en`)
      for (const [key, message] of keys) {
        assert.deepEqual(placeholders(message), placeholders(reference.get(key)!), `placeholders of ${locale} ${key}`)
      }
    }
  })

  test('every key a template or controller asks for exists (no "translation missing" on a page)', ({ assert }) => {
    const en = keysOf('en')
    // Keys built at run time ('docs.endpoints.' + id + '.title') are checked by the pages' tests.
    const missing = [...keysUsed()].filter((key) => !/[._]$/.test(key) && !en.has(key))
    assert.deepEqual(missing, [])
  })

  test('every message is valid ICU and formats in its language', ({ assert }) => {
    for (const locale of i18nManager.supportedLocales()) {
      const i18n = i18nManager.locale(locale)
      for (const [key, message] of keysOf(locale)) {
        const data = Object.fromEntries(placeholders(message).map((p) => [p, 1]))
        assert.notInclude(i18n.t(key, data), 'translation missing', `${locale} ${key}`)
      }
    }
  })

  test('plural messages use the plural categories of their language, always with other', ({ assert }) => {
    for (const locale of i18nManager.supportedLocales()) {
      const categories = new Intl.PluralRules(locale).resolvedOptions().pluralCategories as string[]
      for (const [key, message] of keysOf(locale)) {
        if (!/,\s*plural\s*,/.test(message)) continue
        const selectors = [...message.matchAll(/(?:^|[\s,}])(=\d+|zero|one|two|few|many|other)\s*\{/g)].map((m) => m[1])
        assert.include(selectors, 'other', `${locale} ${key}`)
        for (const selector of selectors.filter((s) => !s.startsWith('='))) {
          assert.include(categories, selector, `${locale} ${key}: "${selector}" is not a plural category of ${locale}`)
        }
      }
    }
    // Chinese has one form: "{count, plural, other {# 次请求}}"
    assert.equal(i18nManager.locale('zh').t('portal.usage.total', { count: 1 }), '共 1 次请求')
    assert.equal(i18nManager.locale('zh').t('portal.billing.charges_of_day', { count: 3 }), '3 次请求')
  })

  test('Accept-Language: zh, zh-CN, zh-Hans and zh-SG pick Chinese; other languages are unaffected', ({ assert }) => {
    for (const header of ['zh-CN,zh;q=0.9', 'zh-CN', 'zh', 'zh-Hans', 'zh-Hans-CN', 'zh-SG', 'en;q=0.5,zh-CN;q=0.9']) {
      assert.equal(i18nManager.getSupportedLocaleFor(header), 'zh', header)
    }
    assert.equal(i18nManager.getSupportedLocaleFor('vi-VN,vi;q=0.9,zh;q=0.5'), 'vi')
    assert.equal(i18nManager.getSupportedLocaleFor('en-US,en;q=0.9,zh-CN;q=0.8'), 'en')
    assert.isNull(i18nManager.getSupportedLocaleFor('ja-JP'))
  })

  test('numbers, money and dates follow the language', ({ assert }) => {
    const en = i18nManager.locale('en')
    const vi = i18nManager.locale('vi')
    assert.equal(en.formatNumber(1234567.5), '1,234,567.5')
    assert.equal(vi.formatNumber(1234567.5), '1.234.567,5')
    assert.equal(en.formatCurrency('12.5', { currency: 'USD' }), '$12.50')
    assert.match(vi.formatCurrency('12.5', { currency: 'USD' }), /^12,50\sUS\$$/)
    const day = new Date(Date.UTC(2026, 11, 3))
    assert.equal(en.formatDate(day, { dateStyle: 'medium', timeZone: 'UTC' }), 'Dec 3, 2026')
    assert.match(vi.formatDate(day, { dateStyle: 'medium', timeZone: 'UTC' }), /3.*12.*2026/)
    const zh = i18nManager.locale('zh')
    assert.equal(zh.formatNumber(1234567.5), '1,234,567.5')
    assert.equal(zh.formatCurrency('12.5', { currency: 'USD' }), 'US$12.50')
    assert.equal(zh.formatDate(day, { dateStyle: 'medium', timeZone: 'UTC' }), '2026年12月3日')
  })
})
