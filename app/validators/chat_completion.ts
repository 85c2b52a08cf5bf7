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
    })
    .allowUnknownProperties()
)
