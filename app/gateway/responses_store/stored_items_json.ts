/**
 * The JSON text a stored response's items are written as. jsonb cannot hold a NUL (`\u0000`) or a lone surrogate
 * (`\ud800`), which a coding agent's input carries now and then (a binary file's text, a test fixture): Postgres
 * refused the whole row and the answered response was lost to `GET /v1/responses/{id}` and `previous_response_id`.
 * Such a list is written as one wrapper item holding its JSON in base64 (ASCII, exact: JSON.stringify writes lone
 * surrogates as escapes, so the text is well formed), and read back as the list it was.
 *
 * The wrapper is an array of one object so the SQL that walks items (`jsonb_array_elements`) still runs; an item of
 * a wrapped list is not found by id in SQL (the store's in-memory lookups still find it).
 */
const WRAPPER_TYPE = 'gateway_encoded_items'

/** The escapes JSON.stringify writes for what jsonb refuses (a literal backslash-u in text may match too: harmless, it is only wrapped) */
const UNSTORABLE_ESCAPE = /\\u(?:0000|d[89a-f][0-9a-f]{2})/

export function itemsJson(items: unknown[]): string {
  const json = JSON.stringify(items)
  if (!UNSTORABLE_ESCAPE.test(json)) return json
  return JSON.stringify([{ type: WRAPPER_TYPE, data: Buffer.from(json, 'utf8').toString('base64') }])
}

/** A row's items as read (pg parses jsonb): the wrapped list unwrapped, any other value as it is. */
export function itemsFromColumn(value: unknown): unknown[] | null {
  if (!Array.isArray(value)) return value as null
  if (value.length === 1) {
    const only = value[0] as { type?: unknown; data?: unknown } | null
    if (only?.type === WRAPPER_TYPE && typeof only.data === 'string') return JSON.parse(Buffer.from(only.data, 'base64').toString('utf8'))
  }
  return value
}

/**
 * The instructions (a text column) the same way: text cannot hold a NUL either (Postgres refused the row), and a
 * lone surrogate would be written as U+FFFD. Such instructions are written as a marker and their JSON (ASCII
 * escapes); instructions that happen to start with the marker are written so too, so every value reads back exact.
 */
const INSTRUCTIONS_MARKER = '\u0001gw-json:'

export function instructionsText(instructions: string | null): string | null {
  if (instructions === null) return null
  if (!instructions.includes('\u0000') && instructions.isWellFormed() && !instructions.startsWith(INSTRUCTIONS_MARKER)) return instructions
  return INSTRUCTIONS_MARKER + JSON.stringify(instructions)
}

export function instructionsFromColumn(value: string | null): string | null {
  if (value === null || !value.startsWith(INSTRUCTIONS_MARKER)) return value
  return JSON.parse(value.slice(INSTRUCTIONS_MARKER.length))
}
