import db from '@adonisjs/lucid/services/db'
import Plan from '#models/plan'
import { AdminInputError } from '#actions/admin_input_error'
import { cliActor, writeAudit, type Actor } from '#actions/audit'

export interface CreatePlanInput {
  name: string
  monthlyInputTokens?: number | null
  monthlyOutputTokens?: number | null
  models?: string[]
  rpm?: number | null
  tpm?: number | null
  /** Decimal string, up to 4 decimals; omitted = 1 (list prices) */
  priceMultiplier?: string | null
}

/** "0.8000" -> "0.8", "1.0000" -> "1" (as forms and the audit log show it) */
export function multiplierText(value: string | number | null | undefined) {
  const text = String(value ?? '1')
  return text.includes('.') ? text.replace(/\.?0+$/, '') : text
}

/** The fields of a plan as the audit log and forms show them. */
export function planSnapshot(plan: Plan) {
  return {
    name: plan.name,
    monthlyInputTokens: plan.monthlyInputTokens,
    monthlyOutputTokens: plan.monthlyOutputTokens,
    models: plan.allowedModels,
    rpm: plan.rpm,
    tpm: plan.tpm,
    priceMultiplier: multiplierText(plan.priceMultiplier),
  }
}

/** Creates a plan; limits left out are unlimited and models default to all ("*"). */
export async function createPlan(input: CreatePlanInput, actor: Actor = cliActor()) {
  return db.transaction(async (trx) => {
    if (await Plan.query({ client: trx }).where('name', input.name).first()) {
      throw new AdminInputError(`A plan named "${input.name}" already exists`, 'name')
    }
    const plan = await Plan.create(
      {
        name: input.name,
        monthlyInputTokens: input.monthlyInputTokens ?? null,
        monthlyOutputTokens: input.monthlyOutputTokens ?? null,
        allowedModels: input.models?.length ? input.models : ['*'],
        rpm: input.rpm ?? null,
        tpm: input.tpm ?? null,
        priceMultiplier: input.priceMultiplier || '1',
      },
      { client: trx }
    )
    await writeAudit(trx, actor, {
      action: 'plan.create',
      subjectType: 'plan',
      subjectId: plan.id,
      summary: `plan ${plan.name} created`,
      after: planSnapshot(plan),
    })
    return plan
  })
}
