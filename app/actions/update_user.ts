import { DateTime } from 'luxon'
import db from '@adonisjs/lucid/services/db'
import User, { type UserRole } from '#models/user'
import Plan from '#models/plan'
import { AdminInputError } from '#actions/admin_input_error'
import { endOtherSessions } from '#services/session_epoch'
import { dropEmailTokens } from '#services/mail/email_tokens'
import { changedFields, cliActor, describeChanges, writeAudit, type Actor } from '#actions/audit'

export interface UpdateUserInput {
  id: number
  role: UserRole
  planId: number | null
  disabled: boolean
  /** A new password (reset); undefined keeps the current one */
  password?: string
}

/**
 * Edits a user: role, plan, disabled, password reset. An admin cannot lock
 * themselves out (disable or demote their own account). Disabling takes
 * effect on the API at once (the users trigger notifies every process).
 */
export async function updateUser(input: UpdateUserInput, actor: Actor = cliActor()) {
  return db.transaction(async (trx) => {
    const user = await User.query({ client: trx }).where('id', input.id).forUpdate().first()
    if (!user) throw AdminInputError.notFound(`No user with id ${input.id}`)
    if (actor.id === user.id && (input.disabled || input.role !== 'admin')) {
      throw new AdminInputError('You cannot disable your own account or remove your own admin role', 'role')
    }
    let plan: Plan | null = null
    if (input.planId !== null) {
      plan = await Plan.find(input.planId, { client: trx })
      if (!plan) throw new AdminInputError(`No plan with id ${input.planId}`, 'planId')
    }
    const oldPlan = user.planId ? await Plan.find(user.planId, { client: trx }) : null
    const before = { role: user.role, plan: oldPlan?.name ?? null, disabled: !!user.disabledAt }
    const after = { role: input.role, plan: plan?.name ?? null, disabled: input.disabled }

    user.role = input.role
    user.planId = plan?.id ?? null
    if (input.disabled && !user.disabledAt) user.disabledAt = DateTime.now()
    if (!input.disabled) user.disabledAt = null
    if (input.password) {
      user.password = input.password
      // A reset ends the account's sessions (one may be why it was reset).
      endOtherSessions(user)
    }
    user.useTransaction(trx)
    await user.save()
    // Disabled (a compromise is a common reason): a reset link mailed before
    // must not work again once the account is enabled.
    if (input.disabled && !before.disabled) await dropEmailTokens(user.id, 'password_reset', trx)

    const diff = changedFields(before, after)
    const changes = [describeChanges(before, after), input.password ? 'password reset' : '']
      .filter(Boolean)
      .join(', ')
    if (changes) {
      await writeAudit(trx, actor, {
        action: input.disabled && !before.disabled ? 'user.disable' : 'user.update',
        subjectType: 'user',
        subjectId: user.id,
        summary: `user ${user.email}: ${changes}`,
        before: diff.before,
        after: input.password ? { ...diff.after, passwordReset: true } : diff.after,
      })
    }
    return user
  })
}
