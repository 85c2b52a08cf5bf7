import { test } from '@japa/runner'
import { GatewayService } from '#gateway/gateway_service'
import type { Catalog } from '#gateway/catalog'
import type { UsageMeter } from '#gateway/metering/usage_meter'
import { readResponseDone, realtimeUsage, transcriptionModelOf, transcriptionUsage, watchedEventOf } from '#gateway/realtime/realtime_events'
import { chooseProtocol } from '#gateway/realtime/realtime_handshake'
import { transcriptionUrl } from '#gateway/realtime/upstream_socket'
import { transcriptionModelIn, transcriptionUpdateOf } from '#gateway/realtime/transcription_sessions'
import { costOf, isPriced, priceForPlan } from '#gateway/metering/pricing'
import type { PlanInfo, PriceInfo, TokenUsage } from '#gateway/types'

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
      usage: {
        promptTokens: 1200,
        completionTokens: 640,
        totalTokens: 1840,
        cachedTokens: 300,
        reasoningTokens: 0,
        audioPromptTokens: 1000,
        cachedAudioTokens: 0,
        audioCompletionTokens: 600,
        estimated: false,
      },
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

test.group('Realtime: session settings and transcription usage', () => {
  test('the transcription model of a session event, GA or beta shape', ({ assert }) => {
    assert.equal(transcriptionModelOf(frame({ type: 'session.updated', session: { audio: { input: { transcription: { model: 'gpt-4o-transcribe' } } } } })), 'gpt-4o-transcribe')
    assert.equal(transcriptionModelOf(frame({ type: 'session.created', session: { input_audio_transcription: { model: 'whisper-1' } } })), 'whisper-1')
    assert.isNull(transcriptionModelOf(frame({ type: 'session.updated', session: { input_audio_transcription: null } })))
    assert.isNull(transcriptionModelOf(frame({ type: 'session.updated', session: { audio: { input: { transcription: null } } } })))
    assert.isUndefined(transcriptionModelOf(frame({ type: 'session.updated', session: { instructions: 'x' } })))
  })

  test('a transcription reports tokens or seconds', ({ assert }) => {
    assert.deepInclude(transcriptionUsage(frame({ item_id: 'item_1', usage: { type: 'tokens', input_tokens: 50, output_tokens: 10, input_token_details: { audio_tokens: 50 } } }))!.usage, {
      promptTokens: 50,
      completionTokens: 10,
      audioPromptTokens: 50,
    })
    assert.deepInclude(transcriptionUsage(frame({ usage: { type: 'duration', seconds: 2.5 } }))!.usage, { audioMillis: 2500, promptTokens: 0 })
    assert.isNull(transcriptionUsage(frame({ transcript: 'x' })))
    // The item transcribed, so that a repeated event is not billed twice.
    assert.equal(transcriptionUsage(frame({ item_id: 'item_1', content_index: 0, usage: { type: 'duration', seconds: 1 } }))!.item, 'item_1:0')
    assert.isNull(transcriptionUsage(frame({ usage: { type: 'duration', seconds: 1 } }))!.item)
  })
})

test.group('Realtime: audio token prices', () => {
  const M = 1_000_000n
  const usage: TokenUsage = {
    promptTokens: 1200,
    completionTokens: 640,
    totalTokens: 1840,
    cachedTokens: 300,
    reasoningTokens: 0,
    audioPromptTokens: 1000,
    cachedAudioTokens: 200,
    audioCompletionTokens: 600,
    estimated: false,
  }
  const text: PriceInfo = { pattern: 'm', inputPico: 5n * M, outputPico: 20n * M, specificity: 1 }

  test('without audio prices, audio tokens cost the token prices', ({ assert }) => {
    assert.equal(costOf(text, usage), 1200n * 5n * M + 640n * 20n * M)
  })

  test('with them, audio tokens cost the audio prices; cached ones the cache-read price when set, else the audio input price', ({ assert }) => {
    const audio = { ...text, audioInputPico: 40n * M, audioOutputPico: 80n * M }
    assert.equal(costOf(audio, usage), (200n * 5n + 1000n * 40n + 40n * 20n + 600n * 80n) * M)
    const cached = { ...audio, cacheReadPico: 2_500_000n }
    assert.equal(costOf(cached, usage), (100n * 5n + 800n * 40n + 40n * 20n + 600n * 80n) * M + 300n * 2_500_000n)
    // Only an output audio price: audio input at the input price.
    assert.equal(costOf({ ...text, audioOutputPico: 80n * M }, usage), (1200n * 5n + 40n * 20n + 600n * 80n) * M)
    // Counts past their totals are not believed past them.
    assert.equal(costOf(audio, { ...usage, audioPromptTokens: 9999, audioCompletionTokens: 9999 }), (1200n * 40n + 640n * 80n) * M)
  })

  test('audio prices alone make a model priced, and a plan multiplier scales them', ({ assert }) => {
    assert.isTrue(isPriced({ pattern: 'm', inputPico: 0n, outputPico: 0n, audioInputPico: 1n, specificity: 1 }))
    const plan = { priceRatio: 5000n, scaledPrices: new WeakMap() } as unknown as PlanInfo
    const scaled = priceForPlan({ ...text, audioInputPico: 40n * M, audioOutputPico: 80n * M }, plan)!
    assert.equal(scaled.audioInputPico, 20n * M)
    assert.equal(scaled.audioOutputPico, 40n * M)
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

test.group('Realtime: transcription sessions', () => {
  test("the upstream's URL: intent=transcription instead of the model (Azure's api-version kept, its deployment dropped)", ({ assert }) => {
    assert.equal(transcriptionUrl('wss://api.openai.com/v1/realtime?model=gpt-4o-transcribe'), 'wss://api.openai.com/v1/realtime?intent=transcription')
    assert.equal(
      transcriptionUrl('wss://r.openai.azure.com/openai/realtime?api-version=2025-04-01-preview&deployment=my-transcribe'),
      'wss://r.openai.azure.com/openai/realtime?api-version=2025-04-01-preview&intent=transcription'
    )
    assert.equal(transcriptionUrl('wss://r.openai.azure.com/openai/v1/realtime?model=my-transcribe'), 'wss://r.openai.azure.com/openai/v1/realtime?intent=transcription')
  })

  test("a secret's configuration: its model read in either dialect, its update sent in the client's with the channel's name", ({ assert }) => {
    const ga = { type: 'transcription', audio: { input: { transcription: { model: 'gpt-4o-transcribe', language: 'en' } } } }
    const beta = { type: 'transcription', input_audio_transcription: { model: 'whisper-1' }, turn_detection: null }
    assert.deepEqual(transcriptionModelIn(ga), { model: 'gpt-4o-transcribe', param: 'session.audio.input.transcription.model' })
    assert.deepEqual(transcriptionModelIn(beta), { model: 'whisper-1', param: 'session.input_audio_transcription.model' })
    assert.deepEqual(transcriptionModelIn({ type: 'transcription' }), { model: '', param: 'session.audio.input.transcription.model' })
    assert.deepEqual(JSON.parse(transcriptionUpdateOf(ga, false, 'deployment-1')), {
      type: 'session.update',
      session: { type: 'transcription', audio: { input: { transcription: { model: 'deployment-1', language: 'en' } } } },
    })
    assert.deepEqual(JSON.parse(transcriptionUpdateOf(beta, true, 'whisper-1')), {
      type: 'transcription_session.update',
      session: { input_audio_transcription: { model: 'whisper-1' }, turn_detection: null },
    })
    // The stored configuration is not changed by it.
    assert.equal(ga.audio.input.transcription.model, 'gpt-4o-transcribe')
  })
})
