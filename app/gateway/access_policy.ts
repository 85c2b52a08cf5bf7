import { limitFor } from '#gateway/limits/model_limits'
import { GatewayError } from '#exceptions/gateway_error'
import { anyGlobMatches } from '#gateway/glob'
import { isPriced, priceForPlan } from '#gateway/metering/pricing'
import type { Catalog } from '#gateway/catalog'
import type { PriceInfo, Principal } from '#gateway/types'
import type { RequestAccount } from '#gateway/metering/request_account'
import {
  asksForAudio,
  mayAnswerImages,
  completionTokenHold,
  holdAtPrice,
  holdPrice,
  imageAnswerTokenHold,
  promptTokenHold,
  webSearchHold,
} from '#gateway/metering/reservation'
import { heldOnKey } from '#gateway/metering/key_reservations'
import { rollSpendPeriod } from '#gateway/metering/spend_period'
import { assertWithinLimit } from '#gateway/end_users/end_user_policies'
import { assertTeamBudget, teamRoom } from '#gateway/teams/team_policies'
import { assertMemberBudget, memberRoom } from '#gateway/teams/member_policies'
import { assertModelBudget, modelBudgetRoom } from '#gateway/limits/model_budgets'

/** May this principal use the model at all? (plan globs, then the key's own globs, then its team's, then its organization's) */
export function modelAllowed(principal: Principal, model: string): boolean {
  if (principal.plan && !anyGlobMatches(principal.plan.allowedModels, model)) return false
  if (principal.key.allowedModels && !anyGlobMatches(principal.key.allowedModels, model)) return false
  const team = principal.team
  if (team === null) return true
  if (team.allowedModels !== null && !anyGlobMatches(team.allowedModels, model)) return false
  // Both must allow it: a team cannot widen its organization's models.
  const org = principal.org
  if (org !== null && org.allowedModels !== null && !anyGlobMatches(org.allowedModels, model)) return false
  return true
}

/**
 * What a cached answer still needs: the plan and the key must allow the
 * model. Nothing else: a hit calls no provider, counts no tokens and costs
 * nothing, so neither the balance, the key's cap nor the token limits hold
 * it back (a user with an empty balance gets the answer they already paid for).
 */
export function authorizeCacheHit(principal: Principal, model: string) {
  if (!modelAllowed(principal, model)) throw GatewayError.modelNotAllowed(model)
}

/**
 * The checks before any upstream call, in the order of the error table:
 * 403 model_not_allowed, 429 token_limit_exceeded, 402 spend_limit_exceeded
 * (the key's USD cap), 402 insufficient_balance. A priced model needs a
 * balance above what requests in flight already hold (reservations), and a
 * capped key a spend below its cap counting the same holds, so concurrent
 * requests cannot overdraw either by more than one request's estimate; a
 * plan's monthly tokens likewise count the tokens requests in flight hold.
 * Returns the model's price for this principal's plan (null = free) for metering.
 */
export function authorizeModel(
  catalog: Catalog,
  principal: Principal,
  model: string,
  /** A thinking suffix's base model (model_suffix.ts): priced as it, unless the suffixed name has its own price */
  base?: string
): PriceInfo | null {
  if (!modelAllowed(principal, model)) throw GatewayError.modelNotAllowed(model)
  const { plan, user } = principal
  if (plan) {
    // Tokens held by requests in flight count as used (authorizeAndReserve), like the balance's holds.
    if (plan.monthlyInputTokens !== null && user.inputTokens + user.reservedInputTokens >= plan.monthlyInputTokens) {
      throw GatewayError.tokenLimitExceeded('input', plan.monthlyInputTokens)
    }
    if (plan.monthlyOutputTokens !== null && user.outputTokens + user.reservedOutputTokens >= plan.monthlyOutputTokens) {
      throw GatewayError.tokenLimitExceeded('output', plan.monthlyOutputTokens)
    }
  }
  const { key } = principal
  // Like the balance: what requests in flight hold counts as spent, so concurrent calls see each other.
  if (key.spendLimitPico !== null) {
    if (key.spendPeriod !== null) rollSpendPeriod(key, Date.now())
    if (key.spentPico + heldOnKey(key.id) >= key.spendLimitPico) {
      const message =
        key.spendPeriod === null
          ? 'This API key reached its spend limit'
          : `This API key reached its spend limit for this ${key.spendPeriod} (UTC); it resets at ${new Date(key.periodEndsAt).toISOString()}`
      throw new GatewayError(402, 'spend_limit_exceeded', message, 'insufficient_quota')
    }
  }
  // The team's budget, shared by its keys, counts every key's holds the same way (team_policies.ts); so does its organization's.
  if (principal.team !== null) {
    assertTeamBudget(principal.team, principal.org)
    // The owner's budget inside the team (member_policies.ts): one null test for an owner without one.
    if (principal.member !== null) assertMemberBudget(principal.member, principal.team.alias)
  }
  // The key's budget for this model (model_budgets.ts): one null test for a key without limits per model. Found as
  // the limits are (limitFor): by its exact name only, a Realtime session or a batch as `GPT-4o` passed a spent `gpt-4o` budget.
  if (key.modelLimits !== null) {
    const budget = limitFor(key.modelLimits, model)?.budget
    if (budget) assertModelBudget(budget)
  }
  // The plan's multiplier applies to everything priced from here: the hold, the bill, the row.
  const price = priceForPlan(base === undefined ? catalog.priceFor(model) : catalog.priceForSuffixed(model, base), plan)
  if (isPriced(price) && user.balancePico - user.reservedPico <= 0n) throw GatewayError.insufficientBalance()
  return price
}

/**
 * An end user with a monthly limit (end_users/end_user_policies.ts), and the
 * key's budget for the model asked for: checked again beside the request's
 * hold, with no await between them, as the key's cap is (admission checked
 * it once already, before the body was validated). Every operation that
 * takes a hold calls it right before.
 */
export function authorizeEndUser(account: RequestAccount) {
  if (account.endUserPolicy !== null) assertWithinLimit(account.endUserPolicy)
  // The key's budget for the model asked for (model_budgets.ts): set by readParsedBody for JSON bodies; the
  // uploads (audio, image edits) name their model here (account.model is the client's until a fallback answers).
  const { modelLimits } = account.principal.key
  if (account.modelBudget === null && modelLimits !== null) account.modelBudget = limitFor(modelLimits, account.model)?.budget ?? null
  if (account.modelBudget !== null) assertModelBudget(account.modelBudget)
}

/**
 * authorizeModel, then hold the request's estimated cost (and, on a plan that
 * limits monthly tokens, its estimated tokens) until the account closes.
 */
export function authorizeAndReserve(
  catalog: Catalog,
  account: RequestAccount,
  model: string,
  rawBytes: number,
  body: Record<string, any>,
  /** Images the request asks for (the images endpoint), held at the per-image price */
  images = 0,
  /** A thinking suffix's base model (see authorizeModel) */
  base?: string,
  /** Searches the gateway adds a tool for (OpenRouter's `:online`, `plugins` web: dialects/web_search.ts) */
  addedSearches = 0
): PriceInfo | null {
  account.audioAnswer = asksForAudio(body)
  account.imageAnswer = mayAnswerImages(body)
  account.imageAnswerTokenHold = account.imageAnswer ? imageAnswerTokenHold(body) : 0
  account.searchHold = Math.max(webSearchHold(body), addedSearches)
  return authorizeAndHold(catalog, account, model, promptTokenHold(rawBytes), completionTokenHold(body), images, base)
}

/**
 * authorizeModel, then hold these tokens and images at the model's price (and
 * the tokens on a plan that limits monthly tokens) until the account closes.
 * For requests whose size says little of their tokens (an image upload's
 * bytes are pictures, not text): they count their own.
 */
export function authorizeAndHold(
  catalog: Catalog,
  account: RequestAccount,
  model: string,
  promptTokens: number,
  completionTokens: number,
  images: number,
  base?: string
): PriceInfo | null {
  const price = authorizeModel(catalog, account.principal, model, base)
  authorizeEndUser(account)
  account.price = price
  // Kept on the account: a fallback model's hold is the same tokens (and images) at its price (admitFallback).
  account.promptTokenHold = promptTokens
  account.completionTokenHold = completionTokens
  account.imageHold = images
  if (isPriced(price)) account.reserve(requestHold(price, account, promptTokens))
  const { plan } = account.principal
  if (plan && (plan.monthlyInputTokens !== null || plan.monthlyOutputTokens !== null)) {
    account.reserveTokens(promptTokens, completionTokens)
  }
  return price
}

/**
 * The request's hold at a price (the model's, or a fallback's): its tokens,
 * images and searches as the account keeps them, the answer's tokens at the
 * audio or image output price when it is one (holdPrice). An answer that may
 * be an image from a model whose image tokens are dearer holds at least one
 * image per choice when the request sets no max tokens (imageAnswerTokenHold):
 * the default allowance is less than one image.
 */
function requestHold(price: PriceInfo | null, account: RequestAccount, promptTokens: number): bigint {
  let completion = account.completionTokenHold
  if (account.imageAnswerTokenHold > completion && price?.imageOutputPico !== undefined && price.imageOutputPico > price.outputPico) {
    completion = account.imageAnswerTokenHold
  }
  return holdAtPrice(holdPrice(price, account), promptTokens, completion, account.imageHold, account.searchHold)
}

/**
 * The prompt grew after admission (a Responses follow-up's conversation, put
 * in front of its input from the store): the request's prompt hold (money,
 * and a plan's monthly tokens) is raised to the new size, as if it had come
 * that size. Nothing is refused here: admission asked for a balance above the
 * holds, as for any request whose estimate proves short.
 */
export function raisePromptHold(account: RequestAccount, rawBytes: number) {
  const tokens = promptTokenHold(rawBytes)
  const extra = tokens - account.promptTokenHold
  if (extra <= 0) return
  account.promptTokenHold = tokens
  const price = account.price
  if (isPriced(price)) {
    const hold = requestHold(price, account, tokens)
    if (hold > account.reservedPico) account.reserve(hold - account.reservedPico)
  }
  const { plan } = account.principal
  if (plan && (plan.monthlyInputTokens !== null || plan.monthlyOutputTokens !== null)) account.reserveTokens(extra, 0)
}

/**
 * May a fallback model at `price` serve this admitted request? A priced one
 * needs what authorizeModel asks of a new request (a balance above what the
 * other requests in flight hold), and raises the request's hold to its own
 * estimate at once, so requests routed at the same moment see it: otherwise
 * a free or cheap model falling back to a dear one held next to nothing, and
 * concurrent calls overdrew the balance by all of their fallbacks' costs.
 */
export function admitFallback(account: RequestAccount, price: PriceInfo | null): boolean {
  if (!isPriced(price)) return true
  const { user } = account.principal
  if (user.balancePico - (user.reservedPico - account.reservedPico) <= 0n) return false
  const hold = requestHold(price, account, account.promptTokenHold)
  if (hold > account.reservedPico) account.reserve(hold - account.reservedPico)
  return true
}

/**
 * What the balance (and the key's spend cap or its team's budget, when it has one) still has
 * beyond every hold of requests in flight, this one's included: what a
 * stream that outgrows its hold may take more (stream_hold.ts). Negative
 * when the holds already pass it (admission asks only for a balance above
 * the holds, so a hold may be larger than what was left).
 */
export function roomBeyondHolds(account: RequestAccount): { balance: bigint; key: bigint | null } {
  const { user, key, team, org, member } = account.principal
  const balance = user.balancePico - user.reservedPico
  // The team's budget, the owner's in the team and the model's are caps on the key too: the tightest is the key's room.
  let room = team === null ? null : teamRoom(team, org)
  if (member !== null) {
    const ofMember = memberRoom(member)
    if (ofMember !== null && (room === null || ofMember < room)) room = ofMember
  }
  if (account.modelBudget !== null) {
    const ofModel = modelBudgetRoom(account.modelBudget)
    if (room === null || ofModel < room) room = ofModel
  }
  if (key.spendLimitPico === null) return { balance, key: room }
  if (key.spendPeriod !== null) rollSpendPeriod(key, Date.now())
  const ofKey = key.spendLimitPico - key.spentPico - heldOnKey(key.id)
  return { balance, key: room !== null && room < ofKey ? room : ofKey }
}

/**
 * The output tokens the plan's monthly limit still has beyond what every
 * request in flight holds (this one's included); null when the plan sets
 * none. Negative when the holds already pass it.
 */
export function outputTokensBeyondHolds(account: RequestAccount): number | null {
  const { plan, user } = account.principal
  if (!plan || plan.monthlyOutputTokens === null) return null
  return plan.monthlyOutputTokens - user.outputTokens - user.reservedOutputTokens
}
