import { test } from '@japa/runner'
import { fromPico, parseDecimal, pricePerTokenPico, toPico, displayUsd } from '#gateway/metering/money'
import { costOf } from '#gateway/metering/pricing'
import { globMatches } from '#gateway/glob'

test.group('Money and prices are exact', () => {
  test('decimal round trips', ({ assert }) => {
    assert.equal(fromPico(toPico('0.1')), '0.100000000000')
    assert.equal(fromPico(toPico('-12.000000000001')), '-12.000000000001')
    assert.equal(parseDecimal('2.5', 6), 2_500_000n)
    assert.equal(displayUsd('0.0000005'), '0.000001')
  })

  test('cost = tokens x price with no floating point drift', ({ assert }) => {
    const price = { pattern: 'x', inputPico: pricePerTokenPico('0.15'), outputPico: pricePerTokenPico('0.6'), specificity: 1 }
    let total = 0n
    for (let i = 0; i < 1000; i++) {
      total += costOf(price, { promptTokens: 7, completionTokens: 3, totalTokens: 10, cachedTokens: 0, reasoningTokens: 0, estimated: false })
    }
    // 1000 x (7 x 0.15 + 3 x 0.6) / 1e6 = 0.00285 exactly
    assert.equal(fromPico(total), '0.002850000000')
  })

  test('cached prompt tokens use the cache prices when the model has them, else the input price', ({ assert }) => {
    const usage = { promptTokens: 1000, completionTokens: 10, totalTokens: 1010, cachedTokens: 600, cacheWriteTokens: 100, reasoningTokens: 0, estimated: false }
    const base = { pattern: 'x', inputPico: pricePerTokenPico('3'), outputPico: pricePerTokenPico('15'), specificity: 1 }
    // No cache prices: all 1000 prompt tokens at $3/M + 10 x $15/M
    assert.equal(fromPico(costOf(base, usage)), '0.003150000000')
    // 300 plain x $3 + 600 read x $0.30 + 100 written x $3.75, + 10 x $15 (per M)
    const cached = { ...base, cacheReadPico: pricePerTokenPico('0.3'), cacheWritePico: pricePerTokenPico('3.75') }
    assert.equal(fromPico(costOf(cached, usage)), '0.001605000000')
    // Only a read price: writes stay at the input price
    const readOnly = { ...base, cacheReadPico: pricePerTokenPico('0.3') }
    assert.equal(fromPico(costOf(readOnly, usage)), '0.001530000000')
  })

  test('globs', ({ assert }) => {
    assert.isTrue(globMatches('gpt-4o*', 'GPT-4o-mini'))
    assert.isTrue(globMatches('*/*', 'nex-agi/nex'))
    assert.isFalse(globMatches('gpt-4o', 'gpt-4o-mini'))
    assert.isTrue(globMatches('a.b?', 'a.bc'))
    assert.isFalse(globMatches('a.b', 'axb'))
  })
})
