import { DateTime } from 'luxon'
import db from '@adonisjs/lucid/services/db'
import User from '#models/user'
import { writeAudit } from '#actions/audit'
import { PortalInputError } from '#actions/portal_input_error'
import { defaultPlan } from '#actions/set_default_plan'
import { registrationOpen } from '#services/app_settings'
import { inviterOf, referralTerms, welcomeInvitee } from '#actions/referrals'

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
export async function registerUser(input: {
  email: string
  password: string
  ip?: string
  referralCode?: string | null
  /** The address must be confirmed (app/actions/email_verification.ts) before the account signs in or gets a welcome credit */
  unverified?: boolean
}) {
  if (!(await registrationOpen())) throw new RegistrationClosedError()
  const email = input.email.trim().toLowerCase()
  if (await User.query().whereRaw('lower(email) = ?', [email]).first()) {
    throw new PortalInputError('email_taken', 'email')
  }
  const plan = await defaultPlan()
  const terms = input.referralCode ? await referralTerms() : null
  return db.transaction(async (trx) => {
    const user = await User.create(
      { email, password: input.password, role: 'user', planId: plan?.id ?? null, emailVerifiedAt: input.unverified ? null : DateTime.now() },
      { client: trx }
    )
    const actor = { id: user.id, label: email, source: 'portal', ip: input.ip ?? null } as const
    await writeAudit(trx, actor, {
      action: 'user.register',
      subjectType: 'user',
      subjectId: user.id,
      summary: `${email} registered on plan ${plan?.name ?? '(none)'}${input.unverified ? ', waiting to confirm the address' : ''}`,
      after: { email, role: 'user', plan: plan?.name ?? null, verified: !input.unverified },
    })
    // Signed up through someone's link: who invited them, and the welcome credit if the operator offers one
    // (once the address is confirmed, when it must be).
    const inviter = terms ? await inviterOf(input.referralCode, trx) : null
    if (inviter && terms) await welcomeInvitee(trx, { id: user.id, email }, inviter, terms, actor, !input.unverified)
    return user
  }).catch(emailTakenMeanwhile)
}

/**
 * The same address sent twice at once (a double click): the check above
 * passed for both, the unique index lets one in, and the other is told the
 * address is taken (its welcome credit rolled back with it), not a 500.
 */
function emailTakenMeanwhile(error: any): never {
  if (error?.code === '23505' && String(error?.constraint ?? '').startsWith('users_email')) {
    throw new PortalInputError('email_taken', 'email')
  }
  throw error
}
