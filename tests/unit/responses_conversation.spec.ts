import { test } from '@japa/runner'
import { GatewayError } from '#exceptions/gateway_error'
import { conversationInput, inputItemsOf } from '#gateway/responses_store/conversation'
import { MAX_CHAIN, type StoredResponse } from '#gateway/responses_store/response_store'

function stored(n: number, previous: string | null): StoredResponse {
  return {
    id: `resp_${n}`,
    kind: 'gateway',
    userId: 1,
    apiKeyId: null,
    channelId: null,
    model: 'm',
    previousResponseId: previous,
    inputItems: [{ role: 'user', content: `q${n}` }],
    instructions: `instructions ${n}`,
    outputItems: [{ type: 'message', role: 'assistant', content: [{ type: 'output_text', text: `a${n}` }] }],
    usage: null,
    status: 'completed',
    createdAt: new Date(),
    expiresAt: new Date(Date.now() + 1000),
  }
}

test.group('Stored Responses: a follow-up\'s conversation (conversation.ts)', () => {
  test('each earlier input then output, oldest first, then the request\'s own input; no instructions', ({ assert }) => {
    const newestFirst = [stored(2, 'resp_1'), stored(1, null)]
    const input = conversationInput(newestFirst, 'q3')
    assert.deepEqual(
      input.map((item: any) => (typeof item.content === 'string' ? item.content : item.content[0].text)),
      ['q1', 'a1', 'q2', 'a2', 'q3']
    )
    assert.notInclude(JSON.stringify(input), 'instructions')
  })

  test('a string input is one user message, as OpenAI lists it', ({ assert }) => {
    assert.deepEqual(inputItemsOf('Hi'), [{ type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Hi' }] }])
    assert.deepEqual(inputItemsOf(undefined), [])
  })

  test(`a chain read ${MAX_CHAIN} deep that goes on: 400 previous_response_chain_too_long; exactly ${MAX_CHAIN} that ends: served`, ({ assert }) => {
    const chain = Array.from({ length: MAX_CHAIN }, (_, i) => stored(MAX_CHAIN - i, `resp_${MAX_CHAIN - i - 1}`))
    try {
      conversationInput(chain, 'more')
      assert.fail('not refused')
    } catch (error) {
      assert.instanceOf(error, GatewayError)
      assert.include(error as GatewayError, { status: 400, code: 'previous_response_chain_too_long', param: 'previous_response_id' })
    }
    chain[chain.length - 1] = stored(1, null)
    assert.lengthOf(conversationInput(chain, 'more'), MAX_CHAIN * 2 + 1)
  })
})
