import vine from '@vinejs/vine'
import {
  isList,
  isOptionalFlag,
  isOptionalList,
  isOptionalTextOrList,
  isText,
  withPlainCase,
} from '#validators/plain_envelope'

/**
 * Thin envelopes of the generation endpoints other than chat completions:
 * only what the gateway itself reads is checked; everything else belongs to
 * the upstream (and to the translation, which tolerates unknown fields).
 * Each one's second argument is its plain case, taken without VineJS
 * (plain_envelope.ts).
 */
const stream = vine.boolean({ strict: true }).optional().nullable()
/** Lists the translation iterates: a wrong type is answered here with the field's name */
const list = () => vine.array(vine.any()).optional().nullable()
const textOrList = () => vine.unionOfTypes([vine.string(), vine.array(vine.any())]).optional().nullable()

export const messagesEnvelope = withPlainCase(
  vine.compile(
    vine
      .object({ model: vine.string().minLength(1), messages: vine.array(vine.any()), system: textOrList(), tools: list(), stream })
      .allowUnknownProperties()
  ),
  (b) =>
    isText(b.model) && isList(b.messages) && isOptionalTextOrList(b.system) && isOptionalList(b.tools) && isOptionalFlag(b.stream)
)

export const countTokensEnvelope = withPlainCase(
  vine.compile(
    vine
      .object({ model: vine.string().minLength(1), messages: vine.array(vine.any()), system: textOrList(), tools: list() })
      .allowUnknownProperties()
  ),
  (b) => isText(b.model) && isList(b.messages) && isOptionalTextOrList(b.system) && isOptionalList(b.tools)
)

export const responsesEnvelope = withPlainCase(
  vine.compile(
    vine.object({ model: vine.string().minLength(1), input: textOrList(), tools: list(), stream }).allowUnknownProperties()
  ),
  (b) => isText(b.model) && isOptionalTextOrList(b.input) && isOptionalList(b.tools) && isOptionalFlag(b.stream)
)

export const geminiEnvelope = withPlainCase(
  vine.compile(vine.object({ contents: vine.array(vine.any()), tools: list() }).allowUnknownProperties()),
  (b) => isList(b.contents) && isOptionalList(b.tools)
)

export const embeddingsEnvelope = withPlainCase(
  vine.compile(
    vine
      .object({
        model: vine.string().minLength(1),
        input: vine.any(),
        encoding_format: vine.enum(['float', 'base64']).optional(),
      })
      .allowUnknownProperties()
  ),
  (b) =>
    isText(b.model) &&
    b.input !== undefined &&
    b.input !== null &&
    (b.encoding_format === undefined || b.encoding_format === 'float' || b.encoding_format === 'base64')
)

export const imagesEnvelope = withPlainCase(
  vine.compile(
    vine
      .object({ model: vine.string().minLength(1), prompt: vine.string().minLength(1), n: vine.number().min(1).max(10).optional() })
      .allowUnknownProperties()
  ),
  // Only a plain number in range: VineJS's own casting of strings is left to VineJS.
  (b) => isText(b.model) && isText(b.prompt) && (b.n === undefined || (typeof b.n === 'number' && b.n >= 1 && b.n <= 10))
)

/**
 * Legacy text completions: the prompt's four forms are checked by the gateway
 * (completions_wire.ts promptProblem, which names them); here only that it is
 * there, and the fields it reads for an estimate and the stream.
 */
export const completionsEnvelope = withPlainCase(
  vine.compile(
    vine
      .object({
        model: vine.string().minLength(1),
        prompt: vine.unionOfTypes([vine.string(), vine.array(vine.any())]),
        suffix: vine.string().optional().nullable(),
        stream,
      })
      .allowUnknownProperties()
  ),
  (b) =>
    isText(b.model) &&
    (typeof b.prompt === 'string' || isList(b.prompt)) &&
    (b.suffix === undefined || b.suffix === null || typeof b.suffix === 'string') &&
    isOptionalFlag(b.stream)
)

/** `/v1/audio/speech`: the model and the text to speak (billed per character); voice and format are the upstream's. */
export const speechEnvelope = withPlainCase(
  vine.compile(vine.object({ model: vine.string().minLength(1), input: vine.string().minLength(1) }).allowUnknownProperties()),
  (b) => isText(b.model) && isText(b.input)
)
