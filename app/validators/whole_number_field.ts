import vine from '@vinejs/vine'
import { jsonWholeNumber } from '#gateway/http/whole_number'

/**
 * Every whole-number field of the admin validators (keys, plans, channels,
 * teams, redemption codes): whichever way it came (a form's text, a JSON
 * body's number or text, an ace flag), one rule reads it, whole_number.ts's:
 * digits or a JSON number, never `0x10`, `1e3`, ` 5`, `5.0` as text, `true`
 * or `[5]`, which Vine's number() took through Number(). `signed` allows a
 * leading minus (priority).
 */
export function wholeNumberField(signed = false) {
  return vine
    .number({ strict: true })
    .parse((value) => jsonWholeNumber(value, signed))
    .withoutDecimals()
}
