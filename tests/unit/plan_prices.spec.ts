import { test } from '@japa/runner'
import { costOf, formatMultiplier, priceForPlan, priceRatioOf } from '#gateway/metering/pricing'
import { pricePerTokenPico } from '#gateway/metering/money'
import type { PlanInfo, PriceInfo } from '#gateway/types'

const price: PriceInfo = {
  pattern: 'm-*',
  inputPico: pricePerTokenPico('0.15'),
  outputPico: pricePerTokenPico('0.6'),
  perImagePico: 40_000_000_000n,
  cacheReadPico: pricePerTokenPico('0.075'),
  cacheWritePico: undefined,
  specificity: 2,
}

function plan(multiplier: string | null): PlanInfo {
  return {
    id: 1,
    name: 'p',
    monthlyInputTokens: null,
    monthlyOutputTokens: null,
    allowedModels: ['*'],
    rpm: null,
    tpm: null,
    priceRatio: priceRatioOf(multiplier),
    scaledPrices: new WeakMap(),
  }
}

test.group('Plan price multipliers', () => {
  test('the ratio is the multiplier over 10^4; 1 is no ratio at all', ({ assert }) => {
    assert.equal(priceRatioOf('0.8'), 8000n)
    assert.equal(priceRatioOf('0.8000'), 8000n)
    assert.equal(priceRatioOf('1.3333'), 13333n)
    assert.isNull(priceRatioOf('1'))
    assert.isNull(priceRatioOf('1.0000'))
    assert.isNull(priceRatioOf(null))
    assert.equal(formatMultiplier(8000n), '0.8')
    assert.equal(formatMultiplier(12500n), '1.25')
    assert.equal(formatMultiplier(10_000_000n), '1000')
    assert.equal(formatMultiplier(null), '1')
  })

  test('a plan at list prices gets the list price object itself', ({ assert }) => {
    assert.strictEqual(priceForPlan(price, plan('1')), price)
    assert.strictEqual(priceForPlan(price, null), price)
    assert.isNull(priceForPlan(null, plan('0.5')))
  })

  test('every per-token price is scaled to the nearest pico, once per plan', ({ assert }) => {
    const vip = plan('0.5')
    const scaled = priceForPlan(price, vip)!
    assert.equal(scaled.inputPico, 75_000n)
    assert.equal(scaled.outputPico, 300_000n)
    assert.equal(scaled.perImagePico, 20_000_000_000n)
    assert.equal(scaled.cacheReadPico, 37_500n)
    assert.isUndefined(scaled.cacheWritePico, 'unset stays unset: the input price applies')
    assert.strictEqual(priceForPlan(price, vip), scaled, 'made once, then reused')

    // 0.000001 per 1M x 0.5 = half a pico per token: rounds half up.
    const tiny = { ...price, inputPico: 1n, outputPico: 3n }
    const halved = priceForPlan(tiny, plan('0.5'))!
    assert.equal(halved.inputPico, 1n)
    assert.equal(halved.outputPico, 2n)
  })

  test('a bill is tokens times the scaled prices, exactly', ({ assert }) => {
    const usage = { promptTokens: 1000, completionTokens: 500, totalTokens: 1500, cachedTokens: 200, reasoningTokens: 0 }
    const scaled = priceForPlan(price, plan('1.25'))!
    assert.equal(costOf(scaled, usage as any), 800n * 187_500n + 200n * 93_750n + 500n * 750_000n)
  })
})
