import vine from '@vinejs/vine'

/** A conversation item: an object (its shape is the Responses input item's, read by the codecs when it is sent) */
const item = () => vine.object({}).allowUnknownProperties()

/** Up to 16 string values, as OpenAI's metadata (names up to 64 characters: conversations_api.ts checks those) */
const metadata = () => vine.record(vine.string().maxLength(512))

/** `POST /v1/conversations` {items?, metadata?} */
export const createConversationValidator = vine.compile(
  vine.object({ items: vine.array(item()).maxLength(20).optional(), metadata: metadata().optional().nullable() }).allowUnknownProperties()
)

/** `POST /v1/conversations/{id}` {metadata} */
export const updateConversationValidator = vine.compile(vine.object({ metadata: metadata() }).allowUnknownProperties())

/** `POST /v1/conversations/{id}/items` {items} */
export const addItemsValidator = vine.compile(vine.object({ items: vine.array(item()).minLength(1).maxLength(20) }).allowUnknownProperties())
