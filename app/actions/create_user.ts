import { randomBytes } from 'node:crypto'
import { DateTime } from 'luxon'
import db from '@adonisjs/lucid/services/db'
import User, { type UserRole } from '#models/user'
import Plan from '#models/plan'
import { AdminInputError } from '#actions/admin_input_error'
import { cliActor, writeAudit, type Actor } from '#actions/audit'

export interface CreateUserInput {
  email: string
  password?: string
  role?: UserRole
  /** Plan by name (ace) … */
  plan?: string
  /** … or by id (panel); null = no plan */
  planId?: number | null
}

/** Creates a user; a password is generated when none is given (returned once). One transaction with its audit row. */
export async function createUser(input: CreateUserInput, actor: Actor = cliActor()) {
  return db.transaction(async (trx) => {
    // Compared as registration compares (register_user.ts): Dup@x.io is dup@x.io's address, not a second account.
    const existing = await User.query({ client: trx }).whereRaw('lower(email) = lower(?)', [input.email]).first()
    if (existing) {
      const named = existing.email === input.email ? input.email : `${input.email} (as ${existing.email})`
      throw new AdminInputError(`A user with email ${named} already exists`, 'email')
    }
    let plan: Plan | null = null
    if (input.planId !== undefined) {
      plan = input.planId === null ? null : await Plan.find(input.planId, { client: trx })
      if (input.planId !== null && !plan) throw new AdminInputError(`No plan with id ${input.planId}`, 'planId')
    } else if (input.plan) {
      plan = await Plan.query({ client: trx }).where('name', input.plan).first()
      if (!plan) throw new AdminInputError(`No plan named "${input.plan}"`, 'plan')
    } else {
      plan = await Plan.query({ client: trx }).where('name', 'default').first()
    }
    const password = input.password ?? randomBytes(12).toString('base64url')
    const user = await User.create(
      // Made by an administrator (panel, ace, the management API, LiteLLM's /user/new): the address needs no confirming.
      { email: input.email, password, role: input.role ?? 'user', planId: plan?.id ?? null, emailVerifiedAt: DateTime.now() },
      { client: trx }
    )
    await writeAudit(trx, actor, {
      action: 'user.create',
      subjectType: 'user',
      subjectId: user.id,
      summary: `user ${user.email} created (${user.role}, plan ${plan?.name ?? 'none'})`,
      after: { email: user.email, role: user.role, plan: plan?.name ?? null },
    })
    return { user, password: input.password ? null : password }
  }).catch((error) => emailTakenMeanwhile(error, input.email))
}

/**
 * The same address created twice at once (a script's retry, two admins):
 * both passed the check above, the unique index let one in; the other is
 * told the address exists, as it would have been a moment later, not a 500.
 */
function emailTakenMeanwhile(error: any, email: string): never {
  if (error?.code === '23505' && String(error?.constraint ?? '').startsWith('users_email')) {
    throw new AdminInputError(`A user with email ${email} already exists`, 'email')
  }
  throw error
}
