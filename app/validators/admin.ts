import vine, { errors } from '@vinejs/vine'
import { PROVIDER_KINDS } from '#gateway/types'
import { SPEND_PERIODS } from '#gateway/metering/spend_period'
import { adminMessages } from '#validators/admin_messages'
import { ipAllowlistArray } from '#validators/ip_allowlist'
import { wholeNumberField } from '#validators/whole_number_field'
import { AWS_REGION, bedrockBaseUrl } from '#gateway/providers/bedrock/bedrock_settings'
import { VERTEX_LOCATION, vertexBaseUrl } from '#gateway/providers/vertex/vertex_settings'

/**
 * Validators shared by the ace commands and the admin panel (one rule, one
 * place: both call these). Compiled once; messages with field labels
 * (admin_messages.ts).
 */

/** A fresh schema each time: VineJS rules like notEmpty() add to the schema they are called on. */
const modelGlobs = () => vine.array(vine.string().trim().minLength(1).maxLength(200)).maxLength(500)

/**
 * Per-channel upstream timeouts (ms): below these a channel fails every
 * request (a 5 ms connect), above them a stuck upstream holds a request for
 * more than a day. The form shows them as the fields' min/max.
 */
export const CHANNEL_TIMEOUT_LIMITS = {
  connectTimeoutMs: { min: 100, max: 600_000 },
  firstByteTimeoutMs: { min: 1_000, max: 3_600_000 },
  idleTimeoutMs: { min: 1_000, max: 3_600_000 },
  totalTimeoutMs: { min: 1_000, max: 86_400_000 },
} as const

/**
 * Numbers bound for their columns: rpm, tpm and priority are int4, token
 * budgets bigint, money numeric(24,12) / prices numeric(20,6): a larger value
 * is a validation message here, not a database error (a 500) later.
 */
const INT4_MAX = 2_147_483_647
const int4 = (signed = false) => wholeNumberField(signed).max(INT4_MAX)
const tokenBudget = () => wholeNumberField().min(0).max(Number.MAX_SAFE_INTEGER)
/** A key's life in days: up to a hundred years */
const lifeDays = () => wholeNumberField().min(1).max(36_500)

const timeout = (name: keyof typeof CHANNEL_TIMEOUT_LIMITS) =>
  wholeNumberField().min(CHANNEL_TIMEOUT_LIMITS[name].min).max(CHANNEL_TIMEOUT_LIMITS[name].max).optional()

export const createUserValidator = vine.compile(
  vine.object({
    email: vine.string().trim().email({ require_tld: false }).maxLength(254),
    password: vine.string().minLength(8).maxLength(200).optional(),
    role: vine.enum(['admin', 'user'] as const).optional(),
    plan: vine.string().trim().optional(),
  })
)

export const createPlanValidator = vine.compile(
  vine.object({
    name: vine.string().trim().minLength(1).maxLength(100),
    monthlyInputTokens: tokenBudget().optional().nullable(),
    monthlyOutputTokens: tokenBudget().optional().nullable(),
    models: modelGlobs().optional(),
    rpm: int4().min(1).optional().nullable(),
    tpm: int4().min(1).optional().nullable(),
    /** 0.0001 to 1000, four decimals (new-api's group ratio) */
    priceMultiplier: vine
      .string()
      .trim()
      .regex(/^(?:\d{1,3}(?:\.\d{1,4})?|1000(?:\.0{1,4})?)$/)
      .regex(/[1-9]/)
      .optional()
      .nullable(),
  })
)

export const createChannelValidator = vine.compile(
  vine.object({
    name: vine.string().trim().minLength(1).maxLength(100),
    provider: vine.enum(PROVIDER_KINDS),
    baseUrl: vine.string().trim().url({ require_tld: false, require_protocol: true, protocols: ['http', 'https'] }),
    apiKey: vine.string().trim().optional(),
    /** Required: a channel that serves no model is never picked */
    models: modelGlobs().notEmpty(),
    modelMapping: vine.record(vine.string().trim().minLength(1)).optional(),
    extraHeaders: vine.record(vine.string()).optional(),
    priority: int4(true).min(-INT4_MAX).optional(),
    weight: wholeNumberField().min(0).max(1000).optional(),
    enabled: vine.boolean().optional(),
    connectTimeoutMs: timeout('connectTimeoutMs'),
    firstByteTimeoutMs: timeout('firstByteTimeoutMs'),
    idleTimeoutMs: timeout('idleTimeoutMs'),
    totalTimeoutMs: timeout('totalTimeoutMs'),
    /** Channel groups: the plans it is open to (ids; the action checks they exist); empty = every plan */
    planIds: vine.array(wholeNumberField().min(1).max(Number.MAX_SAFE_INTEGER)).maxLength(1000).optional(),
  })
)

/** Chosen upstream ids to add to a channel's models, or to replace them with (channel_models.ts) */
export const channelModelsValidator = vine.compile(
  vine.object({
    models: vine.array(vine.string().trim().minLength(1).maxLength(200)).minLength(1).maxLength(5000),
    mode: vine.enum(['add', 'replace'] as const).optional(),
  })
)

const usdAmount = vine.string().trim().regex(/^-?\d{1,12}(\.\d{1,12})?$/)
const usdPrice = vine.string().trim().regex(/^\d{1,12}(\.\d{1,6})?$/)

export const setPriceValidator = vine.compile(
  vine.object({
    model: vine.string().trim().minLength(1).maxLength(200),
    input: usdPrice,
    output: usdPrice,
    perImage: usdPrice.optional(),
    /** Audio prices are small (tts-1: 0.000015 per character): nine decimals */
    perSecond: vine.string().trim().regex(/^\d{1,11}(\.\d{1,9})?$/).optional(),
    perCharacter: vine.string().trim().regex(/^\d{1,11}(\.\d{1,9})?$/).optional(),
    perRequest: usdPrice.optional(),
    perWebSearch: usdPrice.optional(),
    perVideoSecond: usdPrice.optional(),
    cacheRead: usdPrice.optional(),
    cacheWrite: usdPrice.optional(),
    cacheWrite1h: usdPrice.optional(),
    audioInput: usdPrice.optional(),
    audioOutput: usdPrice.optional(),
    imageOutput: usdPrice.optional(),
  })
)

export const topUpValidator = vine.compile(
  vine.object({
    user: vine.string().trim().minLength(1),
    amount: usdAmount,
    note: vine.string().trim().maxLength(500).optional(),
  })
)

export const createKeyValidator = vine.compile(
  vine.object({
    user: vine.string().trim().minLength(1),
    name: vine.string().trim().minLength(1).maxLength(100).optional(),
    models: modelGlobs().optional(),
    expiresInDays: lifeDays().optional(),
    rpm: int4().min(1).optional(),
    tpm: int4().min(1).optional(),
    maxParallel: int4().min(1).optional(),
    spendLimit: usdPrice.optional(),
    spendPeriod: vine.enum(SPEND_PERIODS).optional(),
    /** LiteLLM's soft_budget: crossing it alerts the operator, never refuses */
    softBudget: usdPrice.optional(),
    manage: vine.boolean().optional(),
    allowedIps: ipAllowlistArray().optional(),
  })
)

/** A key's editable fields (panel form and key:update); empty = no limit / never. */
export const updateKeyValidator = vine.compile(
  vine.object({
    name: vine.string().trim().minLength(1).maxLength(100),
    models: modelGlobs().optional(),
    expiresOn: vine.string().trim().regex(/^\d{4}-\d{2}-\d{2}$/).optional().nullable(),
    rpm: int4().min(1).optional().nullable(),
    tpm: int4().min(1).optional().nullable(),
    /** Left out: unchanged; null: no cap */
    maxParallel: int4().min(1).optional().nullable(),
    spendLimit: usdPrice.optional().nullable(),
    spendPeriod: vine.enum(SPEND_PERIODS).optional().nullable(),
    /** Left out: unchanged; null: none */
    softBudget: usdPrice.optional().nullable(),
    /** Left out: unchanged; empty or null: any address */
    allowedIps: ipAllowlistArray().optional().nullable(),
  })
)

/** Model fallbacks (panel form and fallback:set). */
export const setFallbacksValidator = vine.compile(
  vine.object({
    model: vine.string().trim().minLength(1).maxLength(200),
    fallbacks: vine.array(vine.string().trim().minLength(1).maxLength(200)).minLength(1).maxLength(10),
  })
)

/** A batch of prepaid codes (panel form and redeem:create). */
export const createRedemptionCodesValidator = vine.compile(
  vine.object({
    batch: vine.string().trim().minLength(1).maxLength(100),
    perCode: vine.string().trim().regex(/^\d{1,9}(\.\d{1,6})?$/),
    count: wholeNumberField().min(1).max(1000),
    expiresInDays: wholeNumberField().min(1).max(3650).optional(),
  })
)

for (const validator of [
  createUserValidator,
  createPlanValidator,
  createChannelValidator,
  setPriceValidator,
  topUpValidator,
  createKeyValidator,
  updateKeyValidator,
  setFallbacksValidator,
  createRedemptionCodesValidator,
  channelModelsValidator,
]) {
  validator.messagesProvider = adminMessages
}

/** A problem found in a field before validation (an unparseable "name = value" line). */
export interface FieldProblem {
  field: string
  message: string
  rule: string
}

/**
 * "name = value" entries (lines in the panel, comma separated in ace) ->
 * record, and a problem for each entry that has no name, so that the form
 * reports them with every other error of the same submit.
 */
export function parsePairs(field: string, text: unknown, separator: '=' | ':', entries: RegExp = /\n/) {
  const record: Record<string, string> = {}
  const problems: FieldProblem[] = []
  if (text === null || text === undefined) return { record, problems }
  for (const raw of String(text).split(entries)) {
    const entry = raw.trim()
    if (!entry) continue
    const at = entry.indexOf(separator)
    const key = at > 0 ? entry.slice(0, at).trim() : ''
    if (!key) {
      problems.push({ field, rule: 'pairs', message: `"${entry}" must look like "name ${separator} value"` })
      continue
    }
    record[key] = entry.slice(at + 1).trim()
  }
  return { record, problems }
}

/**
 * Validates a channel (panel form or channel:create) and reports every
 * problem at once: those found while parsing (mapping, headers) and the
 * validator's.
 */
export async function validateChannel(data: Record<string, unknown>, problems: FieldProblem[] = []) {
  const [error, input] = await createChannelValidator.tryValidate(withRegionAsBaseUrl(data))
  if (error || problems.length) {
    throw new errors.E_VALIDATION_ERROR([...problems, ...((error?.messages as FieldProblem[]) ?? [])])
  }
  return input!
}

/**
 * A `bedrock` channel may be given its region for a base URL (`us-east-1`):
 * its runtime endpoint, before the URL rule sees it (the panel, channel:create
 * and the management API alike).
 */
export function withRegionAsBaseUrl<T extends Record<string, unknown>>(data: T): T {
  const baseUrl = typeof data.baseUrl === 'string' ? data.baseUrl.trim() : null
  if (baseUrl === null) return data
  if (data.provider === 'bedrock' && AWS_REGION.test(baseUrl)) return { ...data, baseUrl: bedrockBaseUrl(baseUrl) }
  // A `vertex` channel likewise: its location (us-central1, global)
  if (data.provider === 'vertex' && VERTEX_LOCATION.test(baseUrl)) return { ...data, baseUrl: vertexBaseUrl(baseUrl) }
  return data
}
