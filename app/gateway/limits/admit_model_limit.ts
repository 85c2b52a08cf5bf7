import type { ServerResponse } from 'node:http'
import { admitModel } from '#gateway/limits/rate_limits'
import { limitFor } from '#gateway/limits/model_limits'
import type { RequestAccount } from '#gateway/metering/request_account'

/**
 * The key's own rpm/tpm and budget for the model a request names
 * (model_limits.ts limitFor: the name, or a spelling the router serves as
 * it), admitted once the model is known: JSON bodies (generation_request.ts)
 * and the multipart uploads (audio, image edits and variations) alike. The
 * entry is kept on the account, whose tokens count there when metered; its
 * budget (model_budgets.ts) is checked beside the request's hold
 * (access_policy.ts) and metered under the budget's own model name (the
 * usage meter's `budget_model`), whatever spelling the request used. One
 * null test for a key without limits; a promise only with a shared limiter
 * store.
 */
export function admitModelLimit(account: RequestAccount, model: string, res: ServerResponse): void | Promise<void> {
  const limits = account.principal.key.modelLimits
  if (limits === null) return
  const limit = limitFor(limits, model)
  if (limit === undefined) return
  account.modelBudget = limit.budget
  if (limit.rpm === null && limit.tpm === null) return
  account.modelLimit = limit
  return admitModel(limit, res)
}
