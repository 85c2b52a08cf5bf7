import { Session } from '@adonisjs/session'

/**
 * Sessions are kept in a signed cookie, and a browser drops a cookie over
 * 4 KB: a refused form whose input was flashed back (to refill the form)
 * made the whole Set-Cookie vanish, so the page came back without its error
 * message (a long model list, a pasted key, a long note). Flashed input now
 * has a budget: fields are kept in form order while they fit, a field that
 * does not fit is left out (it comes back empty; the error still shows). The
 * messages and everything else in the cookie (the sign-in, the CSRF secret)
 * stay well under the rest of the 4 KB.
 *
 * `shouldFlashValue` is the session's own per-field predicate; the budget
 * applies while `flashExcept` / `flashOnly` / `flashAll` (the input) run,
 * not to `flash(key, message)`.
 */
const FLASH_INPUT_BUDGET = 1536

/** Characters of input still allowed, while one of the input-flashing methods runs */
const left = new WeakMap<object, number>()

/** The prototype's methods, as plain functions (shouldFlashValue is protected in the typings). */
const proto = Session.prototype as unknown as Record<string, (this: object, ...args: unknown[]) => unknown>

const shouldFlashValue = proto.shouldFlashValue
proto.shouldFlashValue = function (value: unknown) {
  if (!shouldFlashValue.call(this, value)) return false
  const budget = left.get(this)
  if (budget === undefined) return true
  const size = typeof value === 'string' ? value.length : (JSON.stringify(value)?.length ?? 0)
  if (size > budget) return false
  left.set(this, budget - size)
  return true
}

for (const name of ['flashExcept', 'flashOnly', 'flashAll']) {
  const flashInput = proto[name]
  proto[name] = function (...args: unknown[]) {
    left.set(this, FLASH_INPUT_BUDGET)
    try {
      return flashInput.apply(this, args)
    } finally {
      left.delete(this)
    }
  }
}
