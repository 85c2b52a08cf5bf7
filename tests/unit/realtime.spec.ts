import { test } from '@japa/runner'
import { GatewayService } from '#gateway/gateway_service'
import type { Catalog } from '#gateway/catalog'
import type { UsageMeter } from '#gateway/metering/usage_meter'
import { readResponseDone, realtimeUsage, watchedEventOf } from '#gateway/realtime/realtime_events'
import { chooseProtocol } from '#gateway/realtime/realtime_handshake'

const frame = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value))

test.group('Realtime: reading the upstream events metering watches', () => {
  test('the type is read from the opening of a frame, whatever the rest holds', ({ assert }) => {
    assert.equal(watchedEventOf(frame({ type: 'response.done', response: { id: 'r1' } })), 'response.done')
    assert.equal(watchedEventOf(frame({ type: 'response.created', response: { id: 'r1' } })), 'response.created')
    // An audio delta is never parsed, and its text never mistaken for an event's type.
    assert.isNull(watchedEventOf(frame({ type: 'response.output_audio_transcript.delta', delta: 'say "response.done" now' })))
    assert.isNull(watchedEventOf(frame({ type: 'response.output_text.delta', delta: '"response.done"' })))
  })

  test('a frame whose keys come in another order is parsed, only when it may be one', ({ assert }) => {
    assert.equal(watchedEventOf(frame('{"event_id":"e1","type":"response.done","response":{}}')), 'response.done')
    assert.equal(watchedEventOf(frame('{ "type" : "response.created" }')), 'response.created')
    assert.isNull(watchedEventOf(frame('{"event_id":"e1","type":"x","note":"response.done"}')))
    assert.equal(watchedEventOf(frame({ type: 'error', error: { message: 'x' } })), 'error')
    assert.equal(watchedEventOf(frame('{"event_id":"e1","type":"error"}')), 'error')
    assert.isNull(watchedEventOf(frame('not json "response.done"')))
  })

  test("response.done's usage as the meter's counts (audio tokens in the totals, cached tokens apart)", ({ assert }) => {
    const done = readResponseDone(
      frame({
        type: 'response.done',
        response: {
          id: 'resp_1',
          status: 'cancelled',
          usage: {
            total_tokens: 1840,
            input_tokens: 1200,
            output_tokens: 640,
            input_token_details: { text_tokens: 200, audio_tokens: 1000, cached_tokens: 300 },
            output_token_details: { text_tokens: 40, audio_tokens: 600 },
          },
        },
      })
    )
    assert.deepEqual(done, {
      id: 'resp_1',
      status: 'cancelled',
      usage: { promptTokens: 1200, completionTokens: 640, totalTokens: 1840, cachedTokens: 300, reasoningTokens: 0, estimated: false },
    })
    assert.isNull(realtimeUsage(null))
    assert.deepInclude(realtimeUsage({ input_tokens: -5, output_tokens: 'x', input_token_details: { cached_tokens: 9 } })!, {
      promptTokens: 0,
      completionTokens: 0,
      cachedTokens: 0,
    })
    assert.deepInclude(readResponseDone(frame('{oops')), { status: 'unreadable', usage: null })
  })

  test('the subprotocol answered: realtime, else the beta one, never the key', ({ assert }) => {
    assert.equal(chooseProtocol(new Set(['openai-insecure-api-key.sk-1', 'realtime', 'openai-beta.realtime-v1'])), 'realtime')
    assert.equal(chooseProtocol(new Set(['openai-insecure-api-key.sk-1', 'openai-beta.realtime-v1'])), 'openai-beta.realtime-v1')
    assert.isFalse(chooseProtocol(new Set(['openai-insecure-api-key.sk-1'])))
  })
})

test.group('Realtime: sessions in flight', () => {
  test('a session counts in flight, is told when a shutdown starts, refused after it, and aborted when the grace ends', async ({ assert }) => {
    const service = new GatewayService({} as Catalog, {} as UsageMeter)
    let drained = 0
    const session = { abort: new AbortController(), onDrain: () => drained++ }
    const release = service.admitSession(session)
    assert.equal(service.inFlight, 1)
    service.startDraining(50)
    assert.equal(drained, 1)
    assert.throws(() => service.admitSession({ abort: new AbortController() }), 'The gateway is shutting down')
    await new Promise((r) => setTimeout(r, 100))
    assert.isTrue(session.abort.signal.aborted)
    release()
    release()
    assert.equal(service.inFlight, 0)
    await service.drain(10)
  })
})
