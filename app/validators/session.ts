import vine from '@vinejs/vine'

/** The login form. Compiled once. */
export const loginValidator = vine.compile(
  vine.object({
    email: vine.string().trim().maxLength(254),
    password: vine.string().maxLength(200),
  })
)
