import vine from '@vinejs/vine'

/**
 * The thin envelope the gateway owns in a chat-completions body. Everything
 * else is the upstream's business and is forwarded untouched.
 */
export const chatCompletionEnvelope = vine.compile(
  vine
    .object({
      model: vine.string().minLength(1),
      messages: vine.array(vine.any()),
      stream: vine.boolean({ strict: true }).optional().nullable(),
      /** Iterated when the request is translated: a wrong type is answered here with the field's name */
      tools: vine.array(vine.any()).optional().nullable(),
    })
    .allowUnknownProperties()
)
