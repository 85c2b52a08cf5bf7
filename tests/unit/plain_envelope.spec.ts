import { test } from '@japa/runner'
import { validateEnvelope } from '#gateway/http/envelope'
import { chatCompletionEnvelope } from '#validators/chat_completion'
import {
  completionsEnvelope,
  countTokensEnvelope,
  embeddingsEnvelope,
  geminiEnvelope,
  imagesEnvelope,
  messagesEnvelope,
  moderationsEnvelope,
  rerankEnvelope,
  responsesCompactEnvelope,
  responsesEnvelope,
} from '#validators/generation'
import type { EnvelopeValidator } from '#validators/plain_envelope'

/** Values each envelope field is tried with: the plain ones and everything VineJS might coerce or refuse. */
const VALUES: unknown[] = [
  undefined, null, '', 'x', 'gpt-4o', 'float', 'base64', 'other', '3', 'true',
  0, 1, 3, 3.5, 10, 11, -1, Number.NaN, Number.POSITIVE_INFINITY,
  true, false, [], [1], ['a', { role: 'user' }], [null], [{}, undefined], {}, { a: 1 },
]

const messages = [{ role: 'user', content: 'hi' }]

/** Each envelope with a body it accepts; the generated bodies are that body with fields swapped for VALUES. */
const ENVELOPES: Array<[string, EnvelopeValidator, Record<string, unknown>]> = [
  ['chat completions', chatCompletionEnvelope, { model: 'gpt-4o', messages, stream: true, tools: [] }],
  ['messages', messagesEnvelope, { model: 'claude', messages, system: 'x', tools: [], stream: false }],
  ['count_tokens', countTokensEnvelope, { model: 'claude', messages, system: [{ type: 'text' }], tools: [] }],
  ['responses', responsesEnvelope, { model: 'gpt-4o', input: 'hi', tools: [], stream: true, store: false, previous_response_id: 'resp_1' }],
  ['responses compact', responsesCompactEnvelope, { model: 'gpt-5-codex', input: [{ type: 'message' }], instructions: 'x', tools: [], previous_response_id: 'resp_1' }],
  ['gemini', geminiEnvelope, { contents: [{ parts: [] }], tools: [] }],
  ['embeddings', embeddingsEnvelope, { model: 'e', input: 'x', encoding_format: 'float' }],
  ['images', imagesEnvelope, { model: 'dall-e', prompt: 'a cat', n: 2 }],
  ['completions', completionsEnvelope, { model: 'gpt-3.5-turbo-instruct', prompt: 'def f(', suffix: 'return 1', stream: true }],
  ['rerank', rerankEnvelope, { model: 'r', query: 'q', documents: ['a', { text: 'b' }], top_n: 1, return_documents: true }],
  ['moderations', moderationsEnvelope, { model: 'm', input: ['a', { type: 'text', text: 'b' }] }],
]

/** A small seeded generator: the same bodies on every run. */
function random(seed: number) {
  return () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff
    return seed / 0x7fffffff
  }
}

/** Every field alone with every value, then random mixes of up to three swapped fields. */
function bodies(good: Record<string, unknown>, count: number) {
  const fields = Object.keys(good)
  const out: Record<string, unknown>[] = []
  const variant = (swaps: Array<[string, unknown]>) => {
    const body: Record<string, unknown> = { ...good, unknown_field: { kept: true } }
    for (const [field, value] of swaps) {
      if (value === undefined) delete body[field]
      else body[field] = value
    }
    out.push(body)
  }
  for (const field of fields) for (const value of VALUES) variant([[field, value]])
  const next = random(fields.length * 7919)
  for (let i = 0; i < count; i++) {
    const swaps: Array<[string, unknown]> = []
    for (let n = 1 + Math.floor(next() * 3); n > 0; n--) {
      swaps.push([fields[Math.floor(next() * fields.length)], VALUES[Math.floor(next() * VALUES.length)]])
    }
    variant(swaps)
  }
  return out
}

async function vineAccepts(validator: EnvelopeValidator, body: Record<string, unknown>) {
  return validator.validate(body).then(
    () => true,
    () => false
  )
}

test.group('Envelope plain case', () => {
  for (const [name, validator, good] of ENVELOPES) {
    test(`${name}: a body taken as plainly valid is one VineJS accepts`, async ({ assert }) => {
      assert.isFunction(validator.plainlyValid)
      let plain = 0
      for (const body of bodies(good, 3000)) {
        if (!validator.plainlyValid!(body)) continue
        plain++
        assert.isTrue(await vineAccepts(validator, body), `plainly valid but refused by VineJS: ${JSON.stringify(body)}`)
      }
      // The generated set must exercise the plain case, not only the fallback.
      assert.isAbove(plain, 10)
    })
  }

  test('the usual bodies of each endpoint take the plain case', ({ assert }) => {
    assert.isTrue(chatCompletionEnvelope.plainlyValid({ model: 'gpt-4o', messages, stream: true, temperature: 0.2 }))
    assert.isTrue(messagesEnvelope.plainlyValid({ model: 'claude', messages, system: 'be brief', max_tokens: 64 }))
    assert.isTrue(messagesEnvelope.plainlyValid({ model: 'claude', messages, system: [{ type: 'text', text: 'x' }], tools: [] }))
    assert.isTrue(countTokensEnvelope.plainlyValid({ model: 'claude', messages }))
    assert.isTrue(responsesEnvelope.plainlyValid({ model: 'gpt-4o', input: 'hi', stream: false }))
    assert.isTrue(geminiEnvelope.plainlyValid({ contents: [{ parts: [{ text: 'hi' }] }] }))
    assert.isTrue(embeddingsEnvelope.plainlyValid({ model: 'e', input: ['a', 'b'], encoding_format: 'float' }))
    assert.isTrue(imagesEnvelope.plainlyValid({ model: 'dall-e', prompt: 'a cat', n: 2 }))
    assert.isTrue(rerankEnvelope.plainlyValid({ model: 'rerank-v3.5', query: 'q', documents: ['a', 'b'], top_n: 1 }))
    assert.isTrue(moderationsEnvelope.plainlyValid({ input: 'hello' }))
  })

  test('a plainly valid body is accepted without a promise; others still get the VineJS message', async ({ assert }) => {
    const plain = { model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] }
    assert.isUndefined(validateEnvelope(chatCompletionEnvelope, plain))

    const coerced = validateEnvelope(imagesEnvelope, { model: 'dall-e', prompt: 'a cat', n: '3' })
    assert.instanceOf(coerced, Promise)
    await coerced

    await assert.rejects(
      async () => validateEnvelope(chatCompletionEnvelope, { model: 'gpt-4o', messages: [null] }),
      'messages.0: The 0 field must be defined'
    )
    await assert.rejects(
      async () => validateEnvelope(chatCompletionEnvelope, { model: 'gpt-4o', messages: [], stream: 'true' }),
      'stream: The value must be a boolean'
    )
  })
})
