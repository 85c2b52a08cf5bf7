import Plan from '#models/plan'
import { anyGlobMatches, isGlob } from '#gateway/glob'
import { createApiKey } from '#actions/issue_api_key'
import { PortalInputError } from '#actions/portal_input_error'
import type { Actor } from '#actions/audit'
import type { SpendPeriod } from '#gateway/metering/spend_period'

/**
 * A user creates one of their own keys from the portal. A model subset must
 * stay inside the plan: a model name the plan's globs match, or a glob the
 * plan itself lists (a plan allowing "*" allows any glob). A team is one the
 * user is an `admin` member of, checked in the key's transaction. The clear
 * key is returned once.
 */
export async function createUserApiKey(
  input: {
  userId: number
  planId: number | null
  name: string
  expiresInDays?: number
  models?: string[]
  /** USD */
  spendLimit?: string
  spendPeriod?: SpendPeriod
  /** Addresses and CIDR ranges the key may be used from; empty = any */
  allowedIps?: string[]
  /** A team the user is an `admin` member of (LiteLLM's team admin); any other team is refused */
  teamId?: number
  },
  actor: Actor
) {
  if (input.spendPeriod && !input.spendLimit) throw new PortalInputError('period_needs_cap', 'spend_period')
  await assertInsidePlan(input.planId, input.models)
  return createApiKey({
    userRef: String(input.userId),
    name: input.name,
    models: input.models,
    expiresInDays: input.expiresInDays,
    spendLimit: input.spendLimit,
    spendPeriod: input.spendPeriod,
    allowedIps: input.allowedIps,
    team: input.teamId,
    teamAdminOnly: true,
  }, actor)
}

/**
 * A user's key may narrow their plan, never widen it: each model is a name
 * the plan's globs match, or a glob the plan itself lists (a plan allowing
 * "*" allows any glob).
 */
export async function assertInsidePlan(planId: number | null, models: string[] | undefined) {
  if (!models?.length) return
  const plan = planId ? await Plan.find(planId) : null
  const planGlobs = plan?.allowedModels ?? ['*']
  for (const model of models) {
    const inside = isGlob(model) ? planGlobs.includes('*') || planGlobs.includes(model) : anyGlobMatches(planGlobs, model)
    if (!inside) throw new PortalInputError('model_outside_plan', 'models')
  }
}
