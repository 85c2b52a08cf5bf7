import db from '@adonisjs/lucid/services/db'
import Plan from '#models/plan'
import { AdminInputError } from '#actions/admin_input_error'
import { cliActor, writeAudit, type Actor } from '#actions/audit'

/** Marks (or unmarks) the plan self-registered users get; at most one plan is the default. */
export async function setDefaultPlan(planId: number, isDefault = true, actor: Actor = cliActor()) {
  return db.transaction(async (trx) => {
    const plan = await Plan.query({ client: trx }).where('id', planId).forUpdate().first()
    if (!plan) throw new AdminInputError(`No plan with id ${planId}`)
    if (plan.isDefault === isDefault) return plan
    if (isDefault) await trx.from('plans').where('is_default', true).whereNot('id', planId).update({ is_default: false })
    await trx.from('plans').where('id', planId).update({ is_default: isDefault, updated_at: new Date() })
    await writeAudit(trx, actor, {
      action: 'plan.default',
      subjectType: 'plan',
      subjectId: plan.id,
      summary: isDefault ? `plan ${plan.name} is the default for new users` : `plan ${plan.name} is no longer the default`,
      before: { isDefault: plan.isDefault },
      after: { isDefault },
    })
    plan.isDefault = isDefault
    return plan
  })
}

/** The plan marked default, else the plan named "default" (older deployments), else none. */
export async function defaultPlan() {
  return (await Plan.findBy('is_default', true)) ?? (await Plan.findBy('name', 'default'))
}
