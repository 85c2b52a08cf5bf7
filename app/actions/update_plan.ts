import db from '@adonisjs/lucid/services/db'
import Plan from '#models/plan'
import User from '#models/user'
import { AdminInputError } from '#actions/admin_input_error'
import { planSnapshot, type CreatePlanInput } from '#actions/create_plan'
import { changedFields, cliActor, describeChanges, writeAudit, type Actor } from '#actions/audit'

/** Replaces a plan's name and limits (left-out limits become unlimited, a left-out multiplier 1). */
export async function updatePlan(id: number, input: CreatePlanInput, actor: Actor = cliActor()) {
  return db.transaction(async (trx) => {
    const plan = await Plan.query({ client: trx }).where('id', id).forUpdate().first()
    if (!plan) throw new AdminInputError(`No plan with id ${id}`)
    const clash = await Plan.query({ client: trx }).where('name', input.name).whereNot('id', id).first()
    if (clash) throw new AdminInputError(`A plan named "${input.name}" already exists`, 'name')
    const before = planSnapshot(plan)
    plan.merge({
      name: input.name,
      monthlyInputTokens: input.monthlyInputTokens ?? null,
      monthlyOutputTokens: input.monthlyOutputTokens ?? null,
      allowedModels: input.models?.length ? input.models : ['*'],
      rpm: input.rpm ?? null,
      tpm: input.tpm ?? null,
      priceMultiplier: input.priceMultiplier || '1',
    })
    plan.useTransaction(trx)
    await plan.save()
    const after = planSnapshot(plan)
    const changes = describeChanges(before, after)
    if (changes) {
      await writeAudit(trx, actor, {
        action: 'plan.update',
        subjectType: 'plan',
        subjectId: plan.id,
        summary: `plan ${plan.name}: ${changes}`,
        ...changedFields(before, after),
      })
    }
    return plan
  })
}

/**
 * Deletes a plan, refused while any user is on it or any channel is open to
 * it (the row lock keeps users from joining and channels from naming it
 * meanwhile: channel edits read the plans they name FOR SHARE). Taking the
 * plan out of a channel's set instead would open a channel set to that plan
 * alone to every plan.
 */
export async function deletePlan(id: number, actor: Actor = cliActor()) {
  return db.transaction(async (trx) => {
    const plan = await Plan.query({ client: trx }).where('id', id).forUpdate().first()
    if (!plan) throw new AdminInputError(`No plan with id ${id}`)
    const row = await User.query({ client: trx }).where('plan_id', id).count('* as total').first()
    const users = Number(row?.$extras.total ?? 0)
    if (users > 0) {
      throw new AdminInputError(
        `Plan ${plan.name} still has ${users} user${users === 1 ? '' : 's'}: move them to another plan first`
      )
    }
    const channels = await trx.from('channels').whereRaw('plan_ids @> ARRAY[?]::bigint[]', [id]).orderBy('id').select('name')
    if (channels.length > 0) {
      const names = channels.slice(0, 5).map((c) => c.name).join(', ') + (channels.length > 5 ? ', ...' : '')
      throw new AdminInputError(
        `Plan ${plan.name} is named by ${channels.length} channel${channels.length === 1 ? '' : 's'} (${names}): take it out of their Plans first`
      )
    }
    const before = planSnapshot(plan)
    await plan.useTransaction(trx).delete()
    await writeAudit(trx, actor, {
      action: 'plan.delete',
      subjectType: 'plan',
      subjectId: id,
      summary: `plan ${before.name} deleted`,
      before,
    })
    return before
  })
}
