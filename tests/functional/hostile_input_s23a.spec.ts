import { test } from '@japa/runner'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { post, resetDatabase, seedChannel, seedUser, startMock } from '#tests/helpers'

/**
 * Hostile and sloppy clients of stored Responses, item references and Codex
 * compaction (twenty-third pass, a): what they send is answered with a clear
 * error in OpenAI's wire format, never silently misread.
 */

test.group('Hostile input s23a: stored Responses', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'claude', provider: 'anthropic', baseUrl: mock.url, models: ['claude-*'] })
    return () => mock.stop()
  })

  test('previous_response_id of a wrong type is the 400 naming it, never an answer without the conversation', async ({ assert }) => {
    const user = await seedUser()
    const auth = { authorization: `Bearer ${user.key}` }
    const first = (await (await post('/v1/responses', { model: 'claude-x', input: 'Remember 42' }, auth)).json()) as any
    const before = mock.lastRequest()
    for (const wrong of [1, { id: first.id }, [first.id], true]) {
      const res = await post('/v1/responses', { model: 'claude-x', input: 'What number?', previous_response_id: wrong }, auth)
      assert.equal(res.status, 400, JSON.stringify(wrong))
      const body = (await res.json()) as any
      assert.equal(body.error.type, 'invalid_request_error')
      assert.include(body.error.message, 'previous_response_id')
    }
    assert.strictEqual(mock.lastRequest(), before, 'no upstream call')
    // null is no follow-up, as at OpenAI
    const none = await post('/v1/responses', { model: 'claude-x', input: 'hi', previous_response_id: null }, auth)
    assert.equal(none.status, 200)
  })

  test('store of a wrong type ("false") is the 400 naming it, never stored against the client\'s wish', async ({ assert }) => {
    const user = await seedUser()
    const auth = { authorization: `Bearer ${user.key}` }
    for (const wrong of ['false', 0, {}]) {
      const res = await post('/v1/responses', { model: 'claude-x', input: 'hi', store: wrong }, auth)
      assert.equal(res.status, 400, JSON.stringify(wrong))
      const body = (await res.json()) as any
      assert.equal(body.error.type, 'invalid_request_error')
      assert.include(body.error.message, 'store')
    }
  })
})
