import { test } from '@japa/runner'
import { MAX_TOKEN_COUNT, reportedTokens, saneUsage, tokenCount } from '#gateway/metering/token_counts'
import { decodeChatUsage } from '#gateway/dialects/openai_chat/response'
import { decodeAnthropicUsage } from '#gateway/dialects/anthropic_messages/response'
import { decodeGeminiUsage } from '#gateway/dialects/gemini/response'
import { decodeResponsesUsage } from '#gateway/dialects/openai_responses/response'
import { costOf } from '#gateway/metering/pricing'
import type { PriceInfo, TokenUsage } from '#gateway/types'

const price: PriceInfo = { pattern: '*', inputPico: 1_000_000n, outputPico: 2_000_000n, cacheReadPico: 100_000n, specificity: 0 } as PriceInfo

test.group('Token counts an upstream reports', () => {
  test('a count is a non-negative integer; junk is absent; negative or beyond the cap is unbelievable', ({ assert }) => {
    assert.equal(reportedTokens(12), 12)
    assert.equal(reportedTokens('12'), 12)
    assert.equal(reportedTokens(12.9), 12)
    for (const absent of [null, undefined, 'abc', '', 'NaN', true, {}, [], Number.NaN]) assert.equal(reportedTokens(absent), 0)
    for (const unbelievable of [-1, '-5', 1e308, Infinity, -Infinity, 9007199254740993, MAX_TOKEN_COUNT + 1]) {
      assert.isNaN(reportedTokens(unbelievable))
    }
    assert.equal(reportedTokens(MAX_TOKEN_COUNT), MAX_TOKEN_COUNT)
    assert.equal(tokenCount(-5), 0)
    assert.equal(tokenCount(1e308), MAX_TOKEN_COUNT)
  })

  test('every dialect refuses an unbelievable report and keeps parts within their whole', ({ assert }) => {
    assert.isNull(decodeChatUsage({ prompt_tokens: -5, completion_tokens: 3 } as any))
    assert.isNull(decodeChatUsage({ prompt_tokens: 1e308, completion_tokens: 3 } as any))
    assert.isNull(decodeChatUsage({ prompt_tokens: null, completion_tokens: null } as any))
    assert.isNull(decodeChatUsage({} as any))
    assert.deepEqual(decodeChatUsage({ prompt_tokens: '10', completion_tokens: 4.5, prompt_tokens_details: { cached_tokens: 50 }, completion_tokens_details: { reasoning_tokens: 9 } } as any), {
      inputTokens: 10, outputTokens: 4, cacheReadTokens: 10, cacheWriteTokens: 0, reasoningTokens: 4,
    })
    // Anthropic's parts add up to the prompt: three counts at the cap are beyond it.
    assert.isNull(decodeAnthropicUsage({ input_tokens: MAX_TOKEN_COUNT, output_tokens: 1, cache_read_input_tokens: MAX_TOKEN_COUNT }))
    assert.isNull(decodeAnthropicUsage({ input_tokens: 5, output_tokens: 1, cache_read_input_tokens: -3 }))
    assert.isNull(decodeGeminiUsage({ promptTokenCount: 5, candidatesTokenCount: 1, thoughtsTokenCount: -1 } as any))
    const gemini = decodeGeminiUsage({ promptTokenCount: 5, candidatesTokenCount: 1, cachedContentTokenCount: 80 } as any)!
    assert.equal(gemini.cacheReadTokens, 5)
    assert.isNull(decodeResponsesUsage({ input_tokens: 5, output_tokens: '1e400' } as any))
  })

  test('what reaches the meter: in range, consistent, never a negative or fractional cost', ({ assert }) => {
    const broken = { promptTokens: -10, completionTokens: 1.5, totalTokens: NaN, cachedTokens: 1e308, reasoningTokens: 7, cacheWriteTokens: -1, estimated: false } as TokenUsage
    const fixed = saneUsage(broken)
    assert.deepInclude(fixed, { promptTokens: 0, completionTokens: 1, totalTokens: 1, cachedTokens: 0, reasoningTokens: 1, cacheWriteTokens: 0 })
    assert.equal(costOf(price, fixed), 2_000_000n)
    const huge = saneUsage({ promptTokens: 3e9, completionTokens: 1e21, totalTokens: 0, cachedTokens: 0, reasoningTokens: 0, estimated: false })
    assert.deepInclude(huge, { promptTokens: MAX_TOKEN_COUNT, completionTokens: MAX_TOKEN_COUNT, totalTokens: 2 * MAX_TOKEN_COUNT })
    // Two capped counts still fit the usage rows' integer columns.
    assert.isBelow(huge.totalTokens, 2 ** 31 - 1)
    const fine: TokenUsage = { promptTokens: 10, completionTokens: 5, totalTokens: 15, cachedTokens: 2, reasoningTokens: 1, estimated: false }
    assert.strictEqual(saneUsage(fine), fine)
    // Units of a per-request price out of range are not believed: one request's worth.
    assert.notProperty(saneUsage({ ...fine, requestUnits: 1e300 }), 'requestUnits')
    assert.equal(saneUsage({ ...fine, requestUnits: 3 }).requestUnits, 3)
  })
})
