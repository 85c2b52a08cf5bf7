import Plan from '#models/plan'
import { AdminInputError } from '#actions/admin_input_error'

export interface CreatePlanInput {
  name: string
  monthlyInputTokens?: number | null
  monthlyOutputTokens?: number | null
  models?: string[]
  rpm?: number | null
  tpm?: number | null
}

/** Creates a plan; limits left out are unlimited and models default to all ("*"). */
export async function createPlan(input: CreatePlanInput) {
  if (await Plan.findBy('name', input.name)) {
    throw new AdminInputError(`A plan named "${input.name}" already exists`)
  }
  return Plan.create({
    name: input.name,
    monthlyInputTokens: input.monthlyInputTokens ?? null,
    monthlyOutputTokens: input.monthlyOutputTokens ?? null,
    allowedModels: input.models?.length ? input.models : ['*'],
    rpm: input.rpm ?? null,
    tpm: input.tpm ?? null,
  })
}
