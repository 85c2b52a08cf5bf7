import vine from '@vinejs/vine'

/** The login form. Compiled once. */
export const loginValidator = vine.compile(
  vine.object({
    email: vine.string().trim().maxLength(254),
    password: vine.string().maxLength(200),
  })
)

/** The second step of a sign-in with two-factor on: a code from the app, or a recovery code (its own form). */
export const loginCodeValidator = vine.compile(
  vine.object({
    code: vine.string().trim().maxLength(64).optional(),
    recovery_code: vine.string().trim().maxLength(64).optional(),
  })
)
