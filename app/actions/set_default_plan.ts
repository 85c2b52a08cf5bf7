import db from '@adonisjs/lucid/services/db'
import Plan from '#models/plan'
import { AdminInputError } from '#actions/admin_input_error'

/** Marks the plan self-registered users get; at most one plan is the default (others are unmarked). */
export async function setDefaultPlan(planId: number, isDefault = true) {
  const plan = await Plan.find(planId)
  if (!plan) throw new AdminInputError(`No plan with id ${planId}`)
  await db.transaction(async (trx) => {
    if (isDefault) await trx.from('plans').where('is_default', true).whereNot('id', planId).update({ is_default: false })
    await trx.from('plans').where('id', planId).update({ is_default: isDefault, updated_at: new Date() })
  })
  await plan.refresh()
  return plan
}

/** The plan marked default, else the plan named "default" (older deployments), else none. */
export async function defaultPlan() {
  return (await Plan.findBy('is_default', true)) ?? (await Plan.findBy('name', 'default'))
}
