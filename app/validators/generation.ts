import vine from '@vinejs/vine'

/**
 * Thin envelopes of the generation endpoints other than chat completions:
 * only what the gateway itself reads is checked; everything else belongs to
 * the upstream (and to the translation, which tolerates unknown fields).
 */
const stream = vine.boolean({ strict: true }).optional().nullable()
/** Lists the translation iterates: a wrong type is answered here with the field's name */
const list = () => vine.array(vine.any()).optional().nullable()
const textOrList = () => vine.unionOfTypes([vine.string(), vine.array(vine.any())]).optional().nullable()

export const messagesEnvelope = vine.compile(
  vine
    .object({ model: vine.string().minLength(1), messages: vine.array(vine.any()), system: textOrList(), tools: list(), stream })
    .allowUnknownProperties()
)

export const countTokensEnvelope = vine.compile(
  vine
    .object({ model: vine.string().minLength(1), messages: vine.array(vine.any()), system: textOrList(), tools: list() })
    .allowUnknownProperties()
)

export const responsesEnvelope = vine.compile(
  vine.object({ model: vine.string().minLength(1), input: textOrList(), tools: list(), stream }).allowUnknownProperties()
)

export const geminiEnvelope = vine.compile(
  vine.object({ contents: vine.array(vine.any()), tools: list() }).allowUnknownProperties()
)

export const embeddingsEnvelope = vine.compile(
  vine
    .object({
      model: vine.string().minLength(1),
      input: vine.any(),
      encoding_format: vine.enum(['float', 'base64']).optional(),
    })
    .allowUnknownProperties()
)

export const imagesEnvelope = vine.compile(
  vine
    .object({ model: vine.string().minLength(1), prompt: vine.string().minLength(1), n: vine.number().min(1).max(10).optional() })
    .allowUnknownProperties()
)
