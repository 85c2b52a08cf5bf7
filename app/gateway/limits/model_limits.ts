import { AdminInputError } from '#actions/admin_input_error'
import { jsonWholeNumber } from '#gateway/http/whole_number'
import { modelBudgetOf, type ModelBudget, type ModelBudgetPendingSource, type ModelSpendRow } from '#gateway/limits/model_budgets'
import { isSpendPeriod, type SpendPeriod } from '#gateway/metering/spend_period'
import { parseModelSuffix } from '#gateway/routing/model_suffix'

/**
 * A key's requests and tokens a minute for one model (LiteLLM's
 * model_rpm_limit / model_tpm_limit), on top of the key's own rpm/tpm. The
 * model is the name the client asked for (before the operator's mappings
 * and fallbacks, as LiteLLM matches the requested model group), and the
 * other spellings the router takes for that same model (limitFor): no globs.
 * Counted by rate_limits.ts (admitModel, addModelTokens).
 */
export interface ModelLimit {
  /** The model's name, as the client asks for it (the 429 names it) */
  model: string
  rpm: number | null
  tpm: number | null
  /** `${keyId} ${model}`: the window's name in both limiter stores, built once per key load */
  windowId: string
  /** The key's USD budget for the model (model_budgets.ts); null = none */
  budget: ModelBudget | null
}

/** By model name; a Map, so a model called `__proto__` is only a name. */
export type ModelLimits = Map<string, ModelLimit>

/** One model's entry as stored: rpm/tpm, and a budget in USD (a decimal string) per period (none: lifetime) */
export interface StoredModelLimit {
  rpm?: number
  tpm?: number
  budget?: string
  budget_period?: SpendPeriod
}

/** api_keys.model_limits as stored: {"gpt-4o": {"rpm": 10, "tpm": 20000, "budget": "5", "budget_period": "day"}} */
export type StoredModelLimits = Record<string, StoredModelLimit>

export const MAX_MODEL_LIMITS = 100
const MAX_MODEL_NAME = 200
const MAX_LIMIT = 2_147_483_647

const NO_SPEND: ModelBudgetPendingSource = { pendingModelBudgetCost: () => 0n }

/**
 * The key's row -> its limits by model (null when it has none: one null test
 * per request). `spend` holds the key's api_key_model_spend rows by model
 * (read with the key when the column holds a budget: hasModelBudget). Each
 * entry is in the Map under its name and, when no other entry holds it,
 * under its folded spelling (foldModelName): one window and one budget for
 * both.
 */
export function modelLimitsFromRow(
  keyId: number,
  column: unknown,
  spend: Map<string, ModelSpendRow> = new Map(),
  pending: ModelBudgetPendingSource = NO_SPEND
): ModelLimits | null {
  if (column === null || typeof column !== 'object' || Array.isArray(column)) return null
  const limits: ModelLimits = new Map()
  const entries: ModelLimit[] = []
  for (const [model, limit] of Object.entries(column as Record<string, unknown>)) {
    if (limit === null || typeof limit !== 'object') continue
    const setting = limit as Record<string, unknown>
    const budget = modelBudgetOf(keyId, model, setting, spend.get(model), pending)
    const entry = { model, rpm: positive(setting.rpm), tpm: positive(setting.tpm), windowId: `${keyId} ${model}`, budget }
    if (entry.rpm !== null || entry.tpm !== null || budget !== null) {
      limits.set(model, entry)
      entries.push(entry)
    }
  }
  for (const entry of entries) {
    const folded = foldModelName(entry.model)
    if (!limits.has(folded)) limits.set(folded, entry)
  }
  return limits.size === 0 ? null : limits
}

/** Does the stored column set a budget for some model? (then the key's load reads its spend rows) */
export function hasModelBudget(column: unknown): boolean {
  if (column === null || typeof column !== 'object' || Array.isArray(column)) return false
  for (const limit of Object.values(column as Record<string, unknown>)) {
    if (limit !== null && typeof limit === 'object' && (limit as Record<string, unknown>).budget !== undefined) return true
  }
  return false
}

/**
 * The limit a request for `model` counts on: the name's own, else that of
 * the spelling the router takes for the same upstream model. The router
 * matches channel model lists and the prefix table without case, sends
 * `google/X`, `deepseek/X` and `zai/X` upstream as X, and serves a thinking
 * or effort suffix (`-thinking`, `-thinking-<budget>`, `-nothinking`,
 * `-high`, `-medium`, `-low`: model_suffix.ts) with its base model: without
 * this, a key held to `o3 rpm=1` called `O3`, `o3-high` or `o3-low` as often
 * as it liked. A name with a limit of its own keeps it (`claude-x-thinking`
 * may be limited apart from `claude-x`). Costs nothing more for a name found
 * as given; a miss folds the name once.
 */
export function limitFor(limits: ModelLimits, model: string): ModelLimit | undefined {
  const exact = limits.get(model)
  if (exact !== undefined) return exact
  const folded = foldModelName(model)
  const byFold = limits.get(folded)
  if (byFold !== undefined) return byFold
  // Suffixes stacked (`o3-high:nitro`) are taken off one by one, as the router composes them: the nearest with a limit.
  let name = folded
  for (let suffix = parseModelSuffix(name); suffix !== null; suffix = parseModelSuffix(name)) {
    name = foldModelName(suffix.base)
    const limit = limits.get(name)
    if (limit !== undefined) return limit
  }
  return undefined
}

/** The prefix table's provider prefixes whose rest is the model sent upstream (prefix_rules.ts) */
const SAME_MODEL_PREFIXES = ['google/', 'deepseek/', 'zai/']

/** One spelling of the names the router serves alike: NFC, lower case, without a provider prefix that is dropped upstream. */
export function foldModelName(model: string): string {
  const folded = model.normalize('NFC').toLowerCase()
  for (const prefix of SAME_MODEL_PREFIXES) if (folded.startsWith(prefix) && folded.length > prefix.length) return folded.slice(prefix.length)
  return folded
}

function positive(value: unknown): number | null {
  return typeof value === 'number' && Number.isInteger(value) && value > 0 ? value : null
}

/**
 * LiteLLM's maps (any may be absent: `current` keeps that kind) -> the
 * column, checked: model names 1-200 characters with no control character
 * (NUL included, C1 too) and no blank anywhere, no two names of one model
 * (refuseSameModelTwice), at most 100 models, each limit a whole number
 * 1..2^31-1 (whole_number.ts's rule; null drops that model's limit), each
 * budget (model_max_budget: {"gpt-4o": {"budget_limit": 5, "time_period":
 * "1d"}}) a USD amount above 0 with a period LiteLLM's budget_duration names
 * (none: the key's whole life). Refused with the field's name (a 400 on the
 * APIs).
 */
export function modelLimitsColumn(
  rpmMap: unknown,
  tpmMap: unknown,
  current: StoredModelLimits | null = null,
  budgetMap?: unknown
): StoredModelLimits | null {
  const merged = new Map<string, StoredModelLimit>()
  const keep = (kind: 'rpm' | 'tpm' | 'budget') => {
    if (current === null) return
    for (const [model, limit] of Object.entries(current)) {
      if (limit?.[kind] === undefined) continue
      const entry = merged.get(model) ?? {}
      if (kind === 'budget') {
        entry.budget = limit.budget
        if (limit.budget_period !== undefined) entry.budget_period = limit.budget_period
      } else entry[kind] = limit[kind]
      merged.set(model, entry)
    }
  }
  const read = (map: unknown, kind: 'rpm' | 'tpm', field: string) => {
    if (map === undefined) return keep(kind)
    if (map === null) return
    if (typeof map !== 'object' || Array.isArray(map)) throw new AdminInputError(`${field} must be an object of model name to a whole number`, field)
    const entries = Object.entries(map as Record<string, unknown>)
    if (entries.length > MAX_MODEL_LIMITS) throw new AdminInputError(`${field}: at most ${MAX_MODEL_LIMITS} models`, field)
    for (const [model, raw] of entries) {
      checkModelName(model, field)
      const value = jsonWholeNumber(raw)
      if (value === null) continue
      if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > MAX_LIMIT) {
        throw new AdminInputError(`${field}["${model}"] must be a whole number from 1 to ${MAX_LIMIT}`, field)
      }
      const entry = merged.get(model) ?? {}
      entry[kind] = value
      merged.set(model, entry)
    }
  }
  read(rpmMap, 'rpm', 'model_rpm_limit')
  read(tpmMap, 'tpm', 'model_tpm_limit')
  readBudgets(budgetMap, merged, keep)
  if (merged.size > MAX_MODEL_LIMITS) throw new AdminInputError(`At most ${MAX_MODEL_LIMITS} models may have their own limits`, 'model_rpm_limit')
  refuseSameModelTwice(merged)
  return stored(merged)
}

const BUDGET_FIELD = 'model_max_budget'

/** model_max_budget: {model: {budget_limit, time_period?}} (null or a model's null: no budget). */
function readBudgets(map: unknown, merged: Map<string, StoredModelLimit>, keep: (kind: 'budget') => void) {
  if (map === undefined) return keep('budget')
  if (map === null) return
  if (typeof map !== 'object' || Array.isArray(map)) {
    throw new AdminInputError(`${BUDGET_FIELD} must be an object of model name to {"budget_limit": USD, "time_period": "1d"}`, BUDGET_FIELD)
  }
  const entries = Object.entries(map as Record<string, unknown>)
  if (entries.length > MAX_MODEL_LIMITS) throw new AdminInputError(`${BUDGET_FIELD}: at most ${MAX_MODEL_LIMITS} models`, BUDGET_FIELD)
  for (const [model, raw] of entries) {
    checkModelName(model, BUDGET_FIELD)
    if (raw === null) continue
    if (typeof raw !== 'object' || Array.isArray(raw)) {
      throw new AdminInputError(`${BUDGET_FIELD}["${model}"] must be {"budget_limit": USD, "time_period": "1d"}`, BUDGET_FIELD)
    }
    const { budget_limit: limit, time_period: period } = raw as Record<string, unknown>
    if (limit === null || limit === undefined) continue
    const entry = merged.get(model) ?? {}
    entry.budget = budgetAmount(limit, model)
    const spendPeriod = budgetPeriodOf(period, model)
    if (spendPeriod !== null) entry.budget_period = spendPeriod
    merged.set(model, entry)
  }
}

/** A budget in USD: a number or decimal text above 0, at most 6 decimals (as a key's cap), as a decimal string. */
function budgetAmount(value: unknown, model: string): string {
  const text = typeof value === 'number' && Number.isFinite(value) ? String(value) : typeof value === 'string' ? value.trim() : ''
  if (!/^\d{1,12}(\.\d{1,6})?$/.test(text) || !/[1-9]/.test(text)) {
    throw new AdminInputError(`${BUDGET_FIELD}["${model}"].budget_limit must be a USD amount above 0 (at most 6 decimals)`, BUDGET_FIELD)
  }
  return text.includes('.') ? text.replace(/\.?0+$/, '') : text
}

/** LiteLLM's time_period (as budget_duration: "1d", "7d", "30d", "1mo"...) as our period; absent: the key's whole life. */
function budgetPeriodOf(value: unknown, model: string): SpendPeriod | null {
  if (value === undefined || value === null || value === '') return null
  if (isSpendPeriod(value)) return value
  const match = typeof value === 'string' ? /^(\d+)\s*(s|m|h|d|w|mo)$/.exec(value.trim()) : null
  if (match) {
    if (match[2] === 'mo') {
      if (match[1] === '1') return 'month'
    } else {
      const seconds = Number(match[1]) * ({ s: 1, m: 60, h: 3600, d: 86_400, w: 604_800 } as Record<string, number>)[match[2]]
      if (seconds === 86_400) return 'day'
      if (seconds === 604_800) return 'week'
      if (seconds === 30 * 86_400) return 'month'
    }
  }
  throw new AdminInputError(
    `${BUDGET_FIELD}["${model}"].time_period: a model's budget resets each UTC day, week or calendar month: give "1d" (or "24h"), "7d" (or "1w") or "30d" (or "1mo"), or leave it out for the key's whole life, not "${String(value)}"`,
    BUDGET_FIELD
  )
}

/**
 * `gpt-4o` and `GPT-4o` (or `google/gemini-x` and `gemini-x`) are one model
 * to the router and would share one window (limitFor): listed twice, which
 * limit holds is a guess. Refused, naming both.
 */
function refuseSameModelTwice(merged: Map<string, unknown>) {
  const seen = new Map<string, string>()
  for (const model of merged.keys()) {
    const folded = foldModelName(model)
    const other = seen.get(folded)
    if (other !== undefined) {
      throw new AdminInputError(`model_rpm_limit: "${other}" and "${model}" are one model (names are matched without case and provider prefix): list it once`, 'model_rpm_limit')
    }
    seen.set(folded, model)
  }
}

function byName(column: StoredModelLimits) {
  return Object.entries(column).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
}

/** A Map of checked entries -> the column (null when empty). Built on a null prototype: `__proto__` stays a name. */
function stored(merged: Map<string, StoredModelLimit>): StoredModelLimits | null {
  if (merged.size === 0) return null
  const column: StoredModelLimits = Object.create(null)
  for (const [model, limit] of [...merged].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) column[model] = limit
  return column
}

function checkModelName(model: string, field: string) {
  if (model.length === 0 || model.length > MAX_MODEL_NAME) {
    throw new AdminInputError(`${field}: a model name is 1 to ${MAX_MODEL_NAME} characters`, field)
  }
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f]/.test(model) || model.trim() !== model) {
    throw new AdminInputError(`${field}: the model name "${model.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?')}" has a control character or a blank at an end`, field)
  }
  // A blank inside (a space, U+00A0, U+2028...): the panel's text form splits a line at blanks, so such a
  // name showed there as "my model rpm=1" and every later save of the key was refused until the line went.
  if (/\s/.test(model)) throw new AdminInputError(`${field}: the model name "${model}" has a blank inside`, field)
  if (!model.isWellFormed()) throw new AdminInputError(`${field}: the model name has a lone surrogate`, field)
}

/** The column as LiteLLM's /key/info shows it: {model_rpm_limit, model_tpm_limit, model_max_budget} (empty objects when none). */
export function litellmModelLimits(column: StoredModelLimits | null) {
  const rpm: Record<string, number> = Object.create(null)
  const tpm: Record<string, number> = Object.create(null)
  const budget: Record<string, { budget_limit: number; time_period: string | null }> = Object.create(null)
  if (column !== null) {
    for (const [model, limit] of byName(column)) {
      if (limit?.rpm !== undefined) rpm[model] = limit.rpm
      if (limit?.tpm !== undefined) tpm[model] = limit.tpm
      if (limit?.budget !== undefined) {
        budget[model] = { budget_limit: Number(limit.budget), time_period: limit.budget_period ? TIME_PERIODS[limit.budget_period] : null }
      }
    }
  }
  return { model_rpm_limit: { ...rpm }, model_tpm_limit: { ...tpm }, model_max_budget: { ...budget } }
}

/** Our periods as LiteLLM writes them (budget_duration, time_period). */
const TIME_PERIODS: Record<SpendPeriod, string> = { day: '1d', week: '7d', month: '1mo' }

/**
 * The panel's text form, one model a line: `gpt-4o rpm=10 tpm=20000
 * budget=5/day` (any may be left out; a budget without a period is for the
 * key's whole life; periods day, week, month). Blank lines are skipped.
 */
export function modelLimitsFromText(text: string | null | undefined): StoredModelLimits | null {
  const rpm: Record<string, number> = Object.create(null)
  const tpm: Record<string, number> = Object.create(null)
  const budgets: Record<string, { budget_limit: string; time_period?: string }> = Object.create(null)
  const seen = new Set<string>()
  const lines = (text ?? '').split(/\r?\n/)
  let count = 0
  for (const [index, raw] of lines.entries()) {
    const line = raw.trim()
    if (line === '') continue
    if (++count > MAX_MODEL_LIMITS) throw new AdminInputError(`At most ${MAX_MODEL_LIMITS} models may have their own limits`, 'modelLimits')
    const [model, ...settings] = line.split(/\s+/)
    if (settings.length === 0) {
      throw new AdminInputError(`Line ${index + 1}: write "${model} rpm=10 tpm=20000 budget=5/day" (any may be left out)`, 'modelLimits')
    }
    if (seen.has(model)) throw new AdminInputError(`Line ${index + 1}: ${model} is already listed`, 'modelLimits')
    seen.add(model)
    for (const setting of settings) {
      const budget = /^budget=([0-9]{1,12}(?:\.[0-9]{1,6})?)(?:\/(day|week|month))?$/.exec(setting)
      if (budget) {
        // Given twice (budget=5/day budget=50), the last one was saved without a word: refused as rpm/tpm are.
        if (model in budgets) throw new AdminInputError(`Line ${index + 1}: budget is given twice for ${model}`, 'modelLimits')
        budgets[model] = budget[2] === undefined ? { budget_limit: budget[1] } : { budget_limit: budget[1], time_period: budget[2] }
        continue
      }
      const match = /^(rpm|tpm)=([0-9]{1,10})$/.exec(setting)
      if (!match) {
        throw new AdminInputError(`Line ${index + 1}: "${setting}" is not rpm=N, tpm=N (N a whole number) or budget=USD[/day|/week|/month]`, 'modelLimits')
      }
      const target = match[1] === 'rpm' ? rpm : tpm
      if (model in target) throw new AdminInputError(`Line ${index + 1}: ${match[1]} is given twice for ${model}`, 'modelLimits')
      target[model] = Number(match[2])
    }
  }
  try {
    return modelLimitsColumn(rpm, tpm, null, budgets)
  } catch (error) {
    if (error instanceof AdminInputError) error.field = 'modelLimits'
    throw error
  }
}

/** The column as the panel's textarea shows it (see modelLimitsFromText). */
export function modelLimitsText(column: StoredModelLimits | null): string {
  if (column === null) return ''
  // By name: jsonb keeps its keys in its own order (shorter first).
  return byName(column)
    .map(([model, limit]) =>
      [
        model,
        limit.rpm !== undefined ? `rpm=${limit.rpm}` : '',
        limit.tpm !== undefined ? `tpm=${limit.tpm}` : '',
        limit.budget !== undefined ? `budget=${limit.budget}${limit.budget_period ? `/${limit.budget_period}` : ''}` : '',
      ]
        .filter(Boolean)
        .join(' ')
    )
    .join('\n')
}
