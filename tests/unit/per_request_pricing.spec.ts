import { test } from '@japa/runner'
import { costOf, isPriced, perRequestCostOf, priceForPlan, priceRatioOf } from '#gateway/metering/pricing'
import { pricePerTokenPico, toPico } from '#gateway/metering/money'
import { estimateCostPico } from '#gateway/metering/reservation'
import type { PlanInfo, PriceInfo, TokenUsage } from '#gateway/types'

const perCall: PriceInfo = {
  pattern: 'per-call-*',
  inputPico: pricePerTokenPico('3'),
  outputPico: pricePerTokenPico('15'),
  perImagePico: 0n,
  perRequestPico: toPico('0.01'),
  specificity: 9,
}

const usage = (extra: Partial<TokenUsage> = {}): TokenUsage => ({
  promptTokens: 100,
  completionTokens: 20,
  totalTokens: 120,
  cachedTokens: 0,
  reasoningTokens: 0,
  estimated: false,
  ...extra,
})

function plan(multiplier: string): PlanInfo {
  return { id: 1, name: 'p', monthlyInputTokens: null, monthlyOutputTokens: null, allowedModels: ['*'], rpm: null, tpm: null, priceRatio: priceRatioOf(multiplier), scaledPrices: new WeakMap() }
}

test.group('Per-request prices (new-api per-call pricing)', () => {
  test('per_request x units: 1 unless the upstream reported search units', ({ assert }) => {
    assert.equal(perRequestCostOf(perCall, usage()), 10_000_000_000n)
    assert.equal(perRequestCostOf(perCall, usage({ requestUnits: 3 })), 30_000_000_000n)
    assert.equal(perRequestCostOf(perCall, usage({ requestUnits: 0 })), 10_000_000_000n, 'a reported 0 still pays one request')
    assert.equal(perRequestCostOf({ ...perCall, perRequestPico: undefined }, usage()), 0n)
    // The token cost is unchanged by it: the account adds it for requests that succeeded.
    assert.equal(costOf(perCall, usage()), 100n * 3_000_000n + 20n * 15_000_000n)
  })

  test("a plan's multiplier scales it like the token prices, to the pico", ({ assert }) => {
    const half = priceForPlan(perCall, plan('0.5'))!
    assert.equal(half.perRequestPico, 5_000_000_000n)
    assert.equal(priceForPlan(perCall, plan('1.3333'))!.perRequestPico, 13_333_000_000n)
    assert.isUndefined(priceForPlan({ ...perCall, perRequestPico: undefined }, plan('0.5'))!.perRequestPico)
  })

  test('a model priced only per request is priced (needs a balance), and its hold includes one request', ({ assert }) => {
    const callOnly: PriceInfo = { pattern: 'x', inputPico: 0n, outputPico: 0n, perImagePico: 0n, perRequestPico: toPico('0.05'), specificity: 1 }
    assert.isTrue(isPriced(callOnly))
    assert.isFalse(isPriced({ ...callOnly, perRequestPico: 0n }))
    assert.equal(estimateCostPico(callOnly, 300, {}), 50_000_000_000n)
    assert.equal(estimateCostPico(perCall, 300, { max_tokens: 10 }), 100n * 3_000_000n + 10n * 15_000_000n + 10_000_000_000n)
  })
})
