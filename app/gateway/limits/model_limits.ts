import { AdminInputError } from '#actions/admin_input_error'
import { jsonWholeNumber } from '#gateway/http/whole_number'
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
}

/** By model name; a Map, so a model called `__proto__` is only a name. */
export type ModelLimits = Map<string, ModelLimit>

/** api_keys.model_limits as stored: {"gpt-4o": {"rpm": 10, "tpm": 20000}} */
export type StoredModelLimits = Record<string, { rpm?: number; tpm?: number }>

export const MAX_MODEL_LIMITS = 100
const MAX_MODEL_NAME = 200
const MAX_LIMIT = 2_147_483_647

/**
 * The key's row -> its limits by model (null when it has none: one null test
 * per request). Each entry is in the Map under its name and, when no other
 * entry holds it, under its folded spelling (foldModelName): one window for
 * both.
 */
export function modelLimitsFromRow(keyId: number, column: unknown): ModelLimits | null {
  if (column === null || typeof column !== 'object' || Array.isArray(column)) return null
  const limits: ModelLimits = new Map()
  const entries: ModelLimit[] = []
  for (const [model, limit] of Object.entries(column as Record<string, unknown>)) {
    if (limit === null || typeof limit !== 'object') continue
    const { rpm, tpm } = limit as Record<string, unknown>
    const entry = { model, rpm: positive(rpm), tpm: positive(tpm), windowId: `${keyId} ${model}` }
    if (entry.rpm !== null || entry.tpm !== null) {
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
  const suffix = parseModelSuffix(folded)
  return suffix === null ? undefined : limits.get(foldModelName(suffix.base))
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
 * LiteLLM's two maps (either may be absent: `current` keeps that kind) ->
 * the column, checked: model names 1-200 characters with no control
 * character (NUL included, C1 too) and no blank anywhere, no two names of one
 * model (refuseSameModelTwice), at most 100 models,
 * each limit a whole number 1..2^31-1 (whole_number.ts's rule; null drops
 * that model's limit). Refused with the field's name (a 400 on the APIs).
 */
export function modelLimitsColumn(
  rpmMap: unknown,
  tpmMap: unknown,
  current: StoredModelLimits | null = null
): StoredModelLimits | null {
  const merged = new Map<string, { rpm?: number; tpm?: number }>()
  const keep = (kind: 'rpm' | 'tpm') => {
    if (current === null) return
    for (const [model, limit] of Object.entries(current)) {
      if (limit?.[kind] === undefined) continue
      const entry = merged.get(model) ?? {}
      entry[kind] = limit[kind]
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
  if (merged.size > MAX_MODEL_LIMITS) throw new AdminInputError(`At most ${MAX_MODEL_LIMITS} models may have their own limits`, 'model_rpm_limit')
  refuseSameModelTwice(merged)
  return stored(merged)
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
function stored(merged: Map<string, { rpm?: number; tpm?: number }>): StoredModelLimits | null {
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

/** The column as LiteLLM's /key/info shows it: {model_rpm_limit: {...}, model_tpm_limit: {...}} (empty objects when none). */
export function litellmModelLimits(column: StoredModelLimits | null) {
  const rpm: Record<string, number> = Object.create(null)
  const tpm: Record<string, number> = Object.create(null)
  if (column !== null) {
    for (const [model, limit] of byName(column)) {
      if (limit?.rpm !== undefined) rpm[model] = limit.rpm
      if (limit?.tpm !== undefined) tpm[model] = limit.tpm
    }
  }
  return { model_rpm_limit: { ...rpm }, model_tpm_limit: { ...tpm } }
}

/**
 * The panel's text form, one model a line: `gpt-4o rpm=10 tpm=20000`
 * (either limit may be left out). Blank lines are skipped.
 */
export function modelLimitsFromText(text: string | null | undefined): StoredModelLimits | null {
  const rpm: Record<string, number> = Object.create(null)
  const tpm: Record<string, number> = Object.create(null)
  const lines = (text ?? '').split(/\r?\n/)
  let count = 0
  for (const [index, raw] of lines.entries()) {
    const line = raw.trim()
    if (line === '') continue
    if (++count > MAX_MODEL_LIMITS) throw new AdminInputError(`At most ${MAX_MODEL_LIMITS} models may have their own limits`, 'modelLimits')
    const [model, ...settings] = line.split(/\s+/)
    if (settings.length === 0) {
      throw new AdminInputError(`Line ${index + 1}: write "${model} rpm=10 tpm=20000" (either limit may be left out)`, 'modelLimits')
    }
    if (model in rpm || model in tpm) throw new AdminInputError(`Line ${index + 1}: ${model} is already listed`, 'modelLimits')
    for (const setting of settings) {
      const match = /^(rpm|tpm)=([0-9]{1,10})$/.exec(setting)
      if (!match) throw new AdminInputError(`Line ${index + 1}: "${setting}" is not rpm=N or tpm=N (N a whole number)`, 'modelLimits')
      const target = match[1] === 'rpm' ? rpm : tpm
      if (model in target) throw new AdminInputError(`Line ${index + 1}: ${match[1]} is given twice for ${model}`, 'modelLimits')
      target[model] = Number(match[2])
    }
  }
  try {
    return modelLimitsColumn(rpm, tpm)
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
    .map(([model, limit]) => [model, limit.rpm !== undefined ? `rpm=${limit.rpm}` : '', limit.tpm !== undefined ? `tpm=${limit.tpm}` : ''].filter(Boolean).join(' '))
    .join('\n')
}

/**
 * LiteLLM's model_max_budget (a USD budget per model) is not kept here: a
 * key given one is refused (400), never made with a budget it would not
 * enforce. Absent, null and {} pass. The key's own cap (max_budget) and a
 * team's budget are the budgets this gateway holds and meters.
 */
export function refuseModelBudgets(value: unknown) {
  if (value === undefined || value === null) return
  if (typeof value === 'object' && !Array.isArray(value) && Object.keys(value).length === 0) return
  throw new AdminInputError(
    'model_max_budget: budgets per model are not supported; use max_budget (the key\'s cap) or a team budget, and model_rpm_limit / model_tpm_limit for limits per model',
    'model_max_budget'
  )
}
