import { GatewayError } from '#exceptions/gateway_error'
import { anyGlobMatches } from '#gateway/glob'
import { isPriced } from '#gateway/metering/pricing'
import type { Catalog } from '#gateway/catalog'
import type { PriceInfo, Principal } from '#gateway/types'

/** May this principal use the model at all? (plan globs, then the key's own globs) */
export function modelAllowed(principal: Principal, model: string): boolean {
  if (principal.plan && !anyGlobMatches(principal.plan.allowedModels, model)) return false
  if (principal.key.allowedModels && !anyGlobMatches(principal.key.allowedModels, model)) return false
  return true
}

/**
 * The checks before any upstream call, in the order of the error table:
 * 403 model_not_allowed, 429 token_limit_exceeded, 402 insufficient_balance.
 * Returns the model's price (null = free) for metering.
 */
export function authorizeModel(catalog: Catalog, principal: Principal, model: string): PriceInfo | null {
  if (!modelAllowed(principal, model)) throw GatewayError.modelNotAllowed(model)
  const { plan, user } = principal
  if (plan) {
    if (plan.monthlyInputTokens !== null && user.inputTokens >= plan.monthlyInputTokens) {
      throw GatewayError.tokenLimitExceeded('input', plan.monthlyInputTokens)
    }
    if (plan.monthlyOutputTokens !== null && user.outputTokens >= plan.monthlyOutputTokens) {
      throw GatewayError.tokenLimitExceeded('output', plan.monthlyOutputTokens)
    }
  }
  const price = catalog.priceFor(model)
  if (isPriced(price) && user.balancePico <= 0n) throw GatewayError.insufficientBalance()
  return price
}
