/**
 * Row ids as the pages receive them (route params, ?before=, ?user=, ?key=):
 * every id column is a bigint, but a JavaScript number is exact only up to
 * 2^53, and Postgres refuses "1e20" or "1.5" for a bigint with an error (a
 * 500). An id is 1 to 15 digits: anything else names no row.
 */
const ID = /^\d{1,15}$/

/** The id in a query-string or form value, or null when it is not one (`1.5`, `1e20`, `-1`, `abc`, `[1]`). */
export function recordId(value: unknown): number | null {
  const text = typeof value === 'number' ? String(value) : typeof value === 'string' ? value.trim() : ''
  if (!ID.test(text)) return null
  const id = Number(text)
  return id > 0 ? id : null
}

/**
 * The route matcher of `:id` segments: a path whose id is no id (too many
 * digits) is a 404 like an id that does not exist, never a query.
 */
export const idMatcher = { match: ID, cast: (value: string) => Number(value) }

/** `text` for a LIKE/ILIKE pattern, its % _ and \ taken literally (a search box's input is no pattern). */
export function escapeLike(text: string) {
  return text.replace(/[%_\\]/g, (c) => `\\${c}`)
}

/** A LIKE/ILIKE pattern matching `text` anywhere. */
export function containsPattern(text: string) {
  return `%${escapeLike(text)}%`
}
