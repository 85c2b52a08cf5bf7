import { readdirSync, readFileSync, existsSync } from 'node:fs'
import app from '@adonisjs/core/services/app'

/**
 * The one place the shared layout and the login page take their words from:
 * resources/lang/en/<file>.json, looked up as `t('<file>.<path>')` with
 * `{name}` placeholders, the same key layout @adonisjs/i18n reads, so
 * translations can replace this helper without touching templates.
 */
let messages: Map<string, string> | null = null

function load() {
  const table = new Map<string, string>()
  const dir = app.makePath('resources/lang/en')
  if (existsSync(dir)) {
    for (const file of readdirSync(dir)) {
      if (!file.endsWith('.json')) continue
      flatten(file.slice(0, -5), JSON.parse(readFileSync(`${dir}/${file}`, 'utf8')), table)
    }
  }
  return table
}

function flatten(prefix: string, value: unknown, into: Map<string, string>) {
  if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) flatten(`${prefix}.${k}`, v, into)
  } else {
    into.set(prefix, String(value))
  }
}

export function t(key: string, data: Record<string, unknown> = {}): string {
  messages ??= load()
  const text = messages.get(key) ?? key
  return text.replace(/\{(\w+)\}/g, (match, name) => (name in data ? String(data[name]) : match))
}
