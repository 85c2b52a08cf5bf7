import User from '#models/user'
import { PortalInputError } from '#actions/portal_input_error'
import { defaultPlan } from '#actions/set_default_plan'
import { registrationOpen } from '#services/app_settings'

/** Registration refused because an operator closed it. */
export class RegistrationClosedError extends Error {
  constructor() {
    super('Registration is closed')
    this.name = 'RegistrationClosedError'
  }
}

/**
 * Self-service sign-up: a "user" account on the default plan, with a zero
 * balance (an admin tops it up). Input is validated by the caller
 * (app/validators/portal.ts); the e-mail is compared case-insensitively.
 */
export async function registerUser(input: { email: string; password: string }) {
  if (!(await registrationOpen())) throw new RegistrationClosedError()
  const email = input.email.trim().toLowerCase()
  if (await User.query().whereRaw('lower(email) = ?', [email]).first()) {
    throw new PortalInputError('email_taken', 'email')
  }
  const plan = await defaultPlan()
  return User.create({ email, password: input.password, role: 'user', planId: plan?.id ?? null })
}
