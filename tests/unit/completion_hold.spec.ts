import { test } from '@japa/runner'
import {
  asksForAudio,
  completionTokenHold,
  DEFAULT_COMPLETION_ALLOWANCE,
  IMAGE_ANSWER_TOKENS,
  imageAnswerTokenHold,
  mayAnswerImages,
} from '#gateway/metering/reservation'

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

  test("Gemini's generationConfig in snake_case, as Google's REST API also takes it, holds the same", ({ assert }) => {
    assert.equal(completionTokenHold({ generation_config: { max_output_tokens: 40, candidate_count: 4 } }), 160)
    assert.equal(completionTokenHold({ generationConfig: { max_output_tokens: 40 } }), 40)
    assert.equal(completionTokenHold({ generation_config: null }), DEFAULT_COMPLETION_ALLOWANCE)
  })
})

test.group('Answer modalities for the holds', () => {
  test('a spoken answer asked in any spelling: chat modalities, Gemini responseModalities or response_modalities', ({ assert }) => {
    assert.isTrue(asksForAudio({ modalities: ['text', 'audio'] }))
    assert.isTrue(asksForAudio({ generationConfig: { responseModalities: ['AUDIO'] } }))
    assert.isTrue(asksForAudio({ generation_config: { response_modalities: ['AUDIO'] } }))
    assert.isTrue(asksForAudio({ generationConfig: { response_modalities: ['AUDIO'] } }))
    assert.isFalse(asksForAudio({ generation_config: { response_modalities: ['TEXT'] } }))
    assert.isFalse(asksForAudio({ generation_config: 'AUDIO' }))
  })

  test('an image answer: asked in any spelling, or no modalities named; text only named in snake_case is not one', ({ assert }) => {
    assert.isTrue(mayAnswerImages({}))
    assert.isTrue(mayAnswerImages({ generation_config: { response_modalities: ['TEXT', 'IMAGE'] } }))
    assert.isFalse(mayAnswerImages({ generation_config: { response_modalities: ['TEXT'] } }))
    assert.isFalse(mayAnswerImages({ generationConfig: { responseModalities: ['TEXT'] } }))
    assert.isFalse(mayAnswerImages({ modalities: ['text'] }))
  })
  test('an image answer without max tokens holds at least one image per choice; with them, or text only, nothing more', ({ assert }) => {
    assert.isAbove(IMAGE_ANSWER_TOKENS, DEFAULT_COMPLETION_ALLOWANCE)
    assert.equal(imageAnswerTokenHold({}), IMAGE_ANSWER_TOKENS)
    assert.equal(imageAnswerTokenHold({ modalities: ['image', 'text'], n: 2 }), 2 * IMAGE_ANSWER_TOKENS)
    assert.equal(imageAnswerTokenHold({ generationConfig: { responseModalities: ['IMAGE'], candidateCount: 3 } }), 3 * IMAGE_ANSWER_TOKENS)
    assert.equal(imageAnswerTokenHold({ modalities: ['image'], max_tokens: 500 }), 0)
    assert.equal(imageAnswerTokenHold({ generation_config: { max_output_tokens: 500 } }), 0)
    assert.equal(imageAnswerTokenHold({ modalities: ['text'] }), 0)
  })
})
