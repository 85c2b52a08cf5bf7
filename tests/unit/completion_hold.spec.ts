import { test } from '@japa/runner'
import { completionTokenHold, DEFAULT_COMPLETION_ALLOWANCE } from '#gateway/metering/reservation'

/**
 * What a request holds for its answer while it runs: max_tokens bounds one
 * choice, and every choice it asks for is billed, so the hold counts them
 * (chat's and completions' `n`, Gemini's `candidateCount`), up to the 128
 * choices OpenAI answers at most.
 */
test.group('Completion token holds', () => {
  test('one choice: its max_tokens (any dialect), else the default allowance', ({ assert }) => {
    assert.equal(completionTokenHold({ max_tokens: 100 }), 100)
    assert.equal(completionTokenHold({ max_completion_tokens: 70, max_tokens: 100 }), 70)
    assert.equal(completionTokenHold({ max_output_tokens: 30 }), 30)
    assert.equal(completionTokenHold({ generationConfig: { maxOutputTokens: 40 } }), 40)
    assert.equal(completionTokenHold({}), DEFAULT_COMPLETION_ALLOWANCE)
  })

  test('several choices hold each one', ({ assert }) => {
    assert.equal(completionTokenHold({ max_tokens: 100, n: 3 }), 300)
    assert.equal(completionTokenHold({ n: 2 }), 2 * DEFAULT_COMPLETION_ALLOWANCE)
    assert.equal(completionTokenHold({ generationConfig: { maxOutputTokens: 40, candidateCount: 4 } }), 160)
    // Not a count: one choice.
    assert.equal(completionTokenHold({ max_tokens: 100, n: 0 }), 100)
    assert.equal(completionTokenHold({ max_tokens: 100, n: '3' }), 100)
    // Past what any upstream answers: bounded.
    assert.equal(completionTokenHold({ max_tokens: 10, n: 1_000_000 }), 1280)
  })
})
