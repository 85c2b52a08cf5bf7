import vine from '@vinejs/vine'
import { isList, isOptionalFlag, isOptionalList, isText, withPlainCase } from '#validators/plain_envelope'

/**
 * The thin envelope the gateway owns in a chat-completions body. Everything
 * else is the upstream's business and is forwarded untouched. The second
 * argument is its plain case, taken without VineJS (plain_envelope.ts).
 */
export const chatCompletionEnvelope = withPlainCase(
  vine.compile(
    vine
      .object({
        model: vine.string().minLength(1),
        messages: vine.array(vine.any()),
        stream: vine.boolean({ strict: true }).optional().nullable(),
        /** Iterated when the request is translated: a wrong type is answered here with the field's name */
        tools: vine.array(vine.any()).optional().nullable(),
      })
      .allowUnknownProperties()
  ),
  (b) => isText(b.model) && isList(b.messages) && isOptionalFlag(b.stream) && isOptionalList(b.tools)
)
