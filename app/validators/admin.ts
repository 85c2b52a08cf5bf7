import vine from '@vinejs/vine'
import { PROVIDER_KINDS } from '#gateway/types'

/** Validators shared by the ace commands and the admin panel. Compiled once. */

const modelGlobs = vine.array(vine.string().trim().minLength(1).maxLength(200)).maxLength(500)

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
    monthlyInputTokens: vine.number().withoutDecimals().min(0).optional().nullable(),
    monthlyOutputTokens: vine.number().withoutDecimals().min(0).optional().nullable(),
    models: modelGlobs.optional(),
    rpm: vine.number().withoutDecimals().min(1).optional().nullable(),
    tpm: vine.number().withoutDecimals().min(1).optional().nullable(),
  })
)

export const createChannelValidator = vine.compile(
  vine.object({
    name: vine.string().trim().minLength(1).maxLength(100),
    provider: vine.enum(PROVIDER_KINDS),
    baseUrl: vine.string().trim().url({ require_tld: false, require_protocol: true, protocols: ['http', 'https'] }),
    apiKey: vine.string().trim().optional(),
    models: modelGlobs,
    modelMapping: vine.record(vine.string().trim().minLength(1)).optional(),
    extraHeaders: vine.record(vine.string()).optional(),
    priority: vine.number().withoutDecimals().optional(),
    weight: vine.number().withoutDecimals().min(0).max(1000).optional(),
    enabled: vine.boolean().optional(),
    connectTimeoutMs: vine.number().withoutDecimals().min(1).optional(),
    firstByteTimeoutMs: vine.number().withoutDecimals().min(1).optional(),
    idleTimeoutMs: vine.number().withoutDecimals().min(1).optional(),
    totalTimeoutMs: vine.number().withoutDecimals().min(1).optional(),
  })
)

const usdAmount = vine.string().trim().regex(/^-?\d+(\.\d{1,12})?$/)
const usdPrice = vine.string().trim().regex(/^\d+(\.\d{1,6})?$/)

export const setPriceValidator = vine.compile(
  vine.object({
    model: vine.string().trim().minLength(1).maxLength(200),
    input: usdPrice,
    output: usdPrice,
    perImage: vine.string().trim().regex(/^\d+(\.\d{1,6})?$/).optional(),
    cacheRead: usdPrice.optional(),
    cacheWrite: usdPrice.optional(),
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
    models: modelGlobs.optional(),
    expiresInDays: vine.number().withoutDecimals().min(1).optional(),
    rpm: vine.number().withoutDecimals().min(1).optional(),
    tpm: vine.number().withoutDecimals().min(1).optional(),
    spendLimit: usdPrice.optional(),
  })
)
