/**
 * A whole number as a form field or a query parameter writes it: ASCII
 * digits only. `Number()` also reads `0x10`, `1e3`, `0b1`, ` 16 `, `16.` and,
 * for a repeated parameter (`limit[]=5`), an array: each became a number a
 * validator then took. NaN for anything else, which every number rule refuses
 * (a form error, a 400) naming its field.
 */
export function wholeNumber(value: unknown): number {
  if (typeof value !== 'string' || !/^[0-9]{1,30}$/.test(value)) return Number.NaN
  return Number(value)
}

/** wholeNumber, or its negative after a leading minus (a channel's priority). */
export function signedWholeNumber(value: unknown): number {
  if (typeof value === 'string' && value.startsWith('-')) return -wholeNumber(value.slice(1))
  return wholeNumber(value)
}


/**
 * A JSON body's whole-number field (management API, LiteLLM's /key/* and
 * /team/*) read by the same rule as a form's: a JSON number as sent (its
 * validator checks it is whole and in range), text as wholeNumber reads it;
 * null and absent as they are. Anything else (`true`, `[5]`, an object) is
 * NaN: without this the validators read them as Number() does, `true` as 1
 * and `[5]` as 5. `signed` allows a leading minus (a channel's priority).
 */
export function jsonWholeNumber(value: unknown, signed = false): unknown {
  if (value === undefined || value === null || typeof value === 'number') return value
  return signed ? signedWholeNumber(value) : wholeNumber(value)
}
