/**
 * The plain case of a generation envelope, checked without VineJS.
 *
 * VineJS stays the envelope's definition and the author of every error
 * message. But a compiled VineJS validator builds an output object, copies
 * every unknown property into it and walks each array with a field context
 * per element: about 4 KB allocated and 2-3 µs per request, for bodies that
 * are almost always well-formed. So each envelope also carries a predicate
 * that accepts only bodies its VineJS schema plainly accepts (strictly
 * typed values, nothing VineJS would coerce); a body it does not accept is
 * not refused here but handed to VineJS, which accepts or answers it exactly
 * as before. `tests/unit/plain_envelope.spec.ts` checks the implication over
 * thousands of generated bodies.
 */
export type PlainCheck = (body: Record<string, any>) => boolean

export interface EnvelopeValidator {
  validate: (data: any) => Promise<unknown>
  /** True only for bodies `validate` accepts; false means "ask validate". */
  plainlyValid?: PlainCheck
}

/** Attaches the plain-case predicate to a compiled validator. */
export function withPlainCase<V extends { validate: (data: any) => Promise<unknown> }>(
  validator: V,
  plainlyValid: PlainCheck
): V & { plainlyValid: PlainCheck } {
  return Object.assign(validator, { plainlyValid })
}

/** `vine.string().minLength(1)` */
export function isText(value: unknown): boolean {
  return typeof value === 'string' && value.length > 0
}

/** `vine.array(vine.any())`: an array with no null or undefined element (VineJS requires each one). */
export function isList(value: unknown): boolean {
  if (!Array.isArray(value)) return false
  for (let i = 0; i < value.length; i++) if (value[i] === null || value[i] === undefined) return false
  return true
}

/** `vine.array(vine.any()).optional().nullable()` */
export function isOptionalList(value: unknown): boolean {
  return value === undefined || value === null || isList(value)
}

/** `vine.unionOfTypes([vine.string(), vine.array(vine.any())]).optional().nullable()` */
export function isOptionalTextOrList(value: unknown): boolean {
  return value === undefined || value === null || typeof value === 'string' || isList(value)
}

/** `vine.boolean({ strict: true }).optional().nullable()` */
export function isOptionalFlag(value: unknown): boolean {
  return value === undefined || value === null || typeof value === 'boolean'
}
