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

/**
 * Responses: `previous_response_id` and `store` are the gateway's own (stored responses): a wrong
 * type is refused by name, never read as "no follow-up" (an answer without its conversation) or
 * as "store" (a body with `store: "false"` kept against the client's wish).
 */
export const responsesEnvelope = withPlainCase(
  vine.compile(
    vine
      .object({ model: vine.string().minLength(1), input: textOrList(), tools: list(), stream, store: stream, previous_response_id: vine.string().optional().nullable() })
      .allowUnknownProperties()
  ),
  (b) =>
    isText(b.model) &&
    isOptionalTextOrList(b.input) &&
    isOptionalList(b.tools) &&
    isOptionalFlag(b.stream) &&
    isOptionalFlag(b.store) &&
    (b.previous_response_id === undefined || b.previous_response_id === null || typeof b.previous_response_id === 'string')
)

/**
 * Responses compaction (`/v1/responses/compact`, Codex's remote compaction): the whole history is
 * required, as a list of items (OpenAI refuses a compaction of nothing; the emulation needs turns).
 */
export const responsesCompactEnvelope = withPlainCase(
  vine.compile(
    vine
      .object({
        model: vine.string().minLength(1),
        input: vine.array(vine.any()),
        instructions: vine.string().optional().nullable(),
        tools: list(),
        previous_response_id: vine.string().optional().nullable(),
      })
      .allowUnknownProperties()
  ),
  (b) =>
    isText(b.model) &&
    isList(b.input) &&
    (b.instructions === undefined || b.instructions === null || typeof b.instructions === 'string') &&
    isOptionalList(b.tools) &&
    (b.previous_response_id === undefined || b.previous_response_id === null || typeof b.previous_response_id === 'string')
)

export const geminiEnvelope = withPlainCase(
  vine.compile(vine.object({ contents: vine.array(vine.any()), tools: list() }).allowUnknownProperties()),
  (b) => isList(b.contents) && isOptionalList(b.tools)
)

/** Imagen's `:predict` (Gemini-native generateImages): instances to draw; the rest is Google's */
export const predictEnvelope = withPlainCase(
  vine.compile(vine.object({ instances: vine.array(vine.any()).minLength(1) }).allowUnknownProperties()),
  (b) => isList(b.instances) && b.instances.length > 0
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

/** A rerank document: a string, or an object with its `text` (Jina, Cohere v1) */
function isRerankDocument(item: unknown): boolean {
  return typeof item === 'string' || (!!item && typeof item === 'object' && !Array.isArray(item) && typeof (item as any).text === 'string')
}

/** Jina / Cohere rerank (`/v1/rerank`, `/v2/rerank`): what the gateway reads to estimate tokens, and what clients get wrong. */
export const rerankEnvelope = withPlainCase(
  vine.compile(
    vine
      .object({
        model: vine.string().minLength(1),
        query: vine.string().minLength(1),
        documents: vine
          .array(
            vine.union([
              vine.union.if((value) => typeof value === 'string', vine.string()),
              vine.union.else(vine.object({ text: vine.string() }).allowUnknownProperties()),
            ])
          )
          .minLength(1),
        top_n: vine.number({ strict: true }).withoutDecimals().min(1).optional().nullable(),
        return_documents: vine.boolean({ strict: true }).optional().nullable(),
      })
      .allowUnknownProperties()
  ),
  (b) =>
    isText(b.model) &&
    isText(b.query) &&
    Array.isArray(b.documents) &&
    b.documents.length > 0 &&
    b.documents.every(isRerankDocument) &&
    (b.top_n === undefined || b.top_n === null || (Number.isInteger(b.top_n) && b.top_n >= 1)) &&
    isOptionalFlag(b.return_documents)
)

/** A moderation input item: a string, or one of OpenAI's multimodal parts (`{type: 'text' | 'image_url', ...}`) */
function isModerationItem(item: unknown): boolean {
  return typeof item === 'string' || (!!item && typeof item === 'object' && !Array.isArray(item) && typeof (item as any).type === 'string')
}

/** OpenAI moderations: `model` is optional (omni-moderation-latest), `input` a string or a list. */
export const moderationsEnvelope = withPlainCase(
  vine.compile(
    vine
      .object({
        model: vine.string().minLength(1).optional(),
        input: vine.unionOfTypes([
          vine.string().minLength(1),
          vine
            .array(
              vine.union([
                vine.union.if((value) => typeof value === 'string', vine.string()),
                vine.union.else(vine.object({ type: vine.string() }).allowUnknownProperties()),
              ])
            )
            .minLength(1),
        ]),
      })
      .allowUnknownProperties()
  ),
  (b) =>
    (b.model === undefined || isText(b.model)) &&
    (isText(b.input) || (Array.isArray(b.input) && b.input.length > 0 && b.input.every(isModerationItem)))
)
