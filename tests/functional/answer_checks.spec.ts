import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import { setPrice } from '#actions/set_price'
import { checkChannelKey, testChannel } from '#actions/test_channel'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import type { RawAnswer } from '#tests/fixtures/mock_upstream/raw_answer'
import { MOCK_TRANSCRIPT, mockSpeechBytes } from '#tests/fixtures/mock_upstream/openai_audio'
import { wavFile } from '#tests/fixtures/audio_files'
import { balanceAndLedger, baseUrl, gateway, multipartBody, post, refreshCaches, resetDatabase, seedChannel, seedUser, startMock, usageRows } from '#tests/helpers'
import { ledgerProblems } from '#tests/money_checks'

/**
 * The answer checks of the paths answer_failover.spec.ts does not cover:
 * the audio endpoints, Anthropic's count_tokens and the channel test. A 2xx
 * that is no answer is the upstream's failure there too: the next channel is
 * tried (`invalid_answer` on the attempt, a failure on the channel's
 * health), and with none left the client gets the 502 in its format, one
 * usage row, nothing charged. The channel test reports it as a failure with
 * the reason, never "OK".
 */

const JSON_ERROR: RawAnswer = { body: '{"error":{"message":"quota exhausted","type":"insufficient_quota"}}' }
const EMPTY_JSON: RawAnswer = { body: '' }
const HTML: RawAnswer = { headers: { 'content-type': 'text/html' }, body: '<!DOCTYPE html><html>Bad gateway</html>' }

function upload(path: string, key: string, fields: Array<[string, string | Buffer, string?]>) {
  const form = multipartBody(fields)
  return fetch(`${baseUrl()}${path}`, { method: 'POST', headers: { 'authorization': `Bearer ${key}`, 'content-type': form.contentType }, body: form.body })
}

async function attemptsOf(requestId: string) {
  return db.from('request_attempts').where('request_id', requestId).orderBy('attempt')
}

test.group('Answer checks: audio, count_tokens and the channel test', (group) => {
  let bad: MockUpstream
  let good: MockUpstream
  /** What the broken upstream answers to every request */
  let broken: RawAnswer = JSON_ERROR
  let n = 0

  group.setup(async () => {
    await resetDatabase()
    bad = await startMock({ faults: () => ({ raw: broken }) })
    good = await startMock()
    return async () => {
      ;(await gateway()).health.reset()
      await bad.stop()
      await good.stop()
    }
  })
  group.each.setup(async () => (await gateway()).health.reset())

  /** A fresh model (`prefix` + n) on a broken channel first, then on `second` (the good mock, or broken too) */
  async function pair(prefix: string, provider: 'openai' | 'anthropic', second: MockUpstream) {
    n++
    const model = `${prefix}-${n}`
    const primary = await seedChannel({ name: `ac-broken-${n}`, provider, baseUrl: bad.url, models: [model], priority: 10 })
    const backup = await seedChannel({ name: `ac-second-${n}`, provider, baseUrl: second.url, models: [model], priority: 0 })
    return { model, primary, backup }
  }

  /** The request's one row, its attempts as [channel, status, outcome], and the first attempt's error */
  async function recordOf(userId: number) {
    const rows = await usageRows(userId)
    const attempts = await attemptsOf(rows[0].request_id)
    return { rows, attempts: attempts.map((a) => [a.channel_id, a.status, a.outcome]), error: String(attempts[0]?.error) }
  }

  test('transcriptions and translations: {$self} under a 200 fails over to the next channel')
    .with(['a JSON error body', 'an empty body', 'JSON without text', 'an HTML page for text', 'a text error body for srt', 'a vtt that is not WebVTT'])
    .run(async ({ assert }, label) => {
      const [raw, format, reason] = ({
        'a JSON error body': [JSON_ERROR, 'json', 'quota exhausted'],
        'an empty body': [{ headers: { 'content-type': 'text/plain' }, body: '' }, 'text', 'an empty answer'],
        'JSON without text': [{ body: '{"task":"transcribe"}' }, 'verbose_json', 'without its transcript'],
        'an HTML page for text': [HTML, 'text', 'an HTML page'],
        'a text error body for srt': [{ headers: { 'content-type': 'text/plain' }, body: JSON_ERROR.body }, 'srt', 'quota exhausted'],
        'a vtt that is not WebVTT': [{ headers: { 'content-type': 'text/vtt' }, body: 'Service unavailable' }, 'vtt', 'not WebVTT'],
      } as const)[label] as [RawAnswer, string, string]
      broken = raw
      for (const path of ['/v1/audio/transcriptions', '/v1/audio/translations']) {
        ;(await gateway()).health.reset()
        const { model, primary, backup } = await pair('whisper-ac', 'openai', good)
        await setPrice({ model, input: '0', output: '0', perSecond: '0.0001' })
        await refreshCaches()
        const user = await seedUser({ balance: '1' })
        const response = await upload(path, user.key, [['file', wavFile(1000), 'a.wav'], ['model', model], ['response_format', format]])
        const text = await response.text()
        assert.equal(response.status, 200, `${path}: ${text}`)
        assert.include(text, MOCK_TRANSCRIPT, path)
        const { rows, attempts, error } = await recordOf(user.userId)
        assert.lengthOf(rows, 1, path)
        assert.include(rows[0], { channel_id: backup.id, status: 200, error_code: null, attempts: 2 }, path)
        assert.deepEqual(attempts, [[primary.id, 200, 'invalid_answer'], [backup.id, 200, 'ok']], path)
        assert.include(error, reason, path)
        assert.equal((await gateway()).health.stateOf(primary.id).failures, 1, path)
        // Billed once, by the channel that answered.
        const money = await balanceAndLedger(user.userId)
        assert.isAbove(Number(rows[0].cost), 0, path)
        assert.closeTo(1 - Number(money.balance), Number(rows[0].cost), 1e-12, path)
      }
    })

  test('a transcription stream that opens with an error event fails over', async ({ assert }) => {
    broken = { headers: { 'content-type': 'text/event-stream' }, chunks: [`data: ${JSON_ERROR.body}\n\n`] }
    const { model, primary, backup } = await pair('gpt-4o-ac', 'openai', good)
    const user = await seedUser()
    const response = await upload('/v1/audio/transcriptions', user.key, [['file', wavFile(500), 'a.wav'], ['model', model], ['stream', 'true']])
    const text = await response.text()
    assert.equal(response.status, 200)
    assert.include(text, 'transcript.text.done')
    assert.notInclude(text, 'quota exhausted')
    const { rows, attempts, error } = await recordOf(user.userId)
    assert.include(rows[0], { channel_id: backup.id, status: 200, error_code: null, attempts: 2 })
    assert.deepEqual(attempts, [[primary.id, 200, 'invalid_answer'], [backup.id, 200, 'ok']])
    assert.include(error, 'began with an error: quota exhausted')
  })

  test('speech: {$self} under a 200 is no audio: the next channel\'s audio is relayed, billed once')
    .with(['a JSON error body', 'an empty audio body', 'a JSON error labelled audio/mpeg', 'a text page', 'a body cut before its first byte'])
    .run(async ({ assert }, label) => {
      const [raw, reason] = ({
        'a JSON error body': [JSON_ERROR, 'quota exhausted'],
        'an empty audio body': [{ headers: { 'content-type': 'audio/mpeg' }, body: '' }, 'no audio'],
        'a JSON error labelled audio/mpeg': [{ headers: { 'content-type': 'audio/mpeg' }, body: JSON_ERROR.body }, 'quota exhausted'],
        'a text page': [HTML, 'text/html instead of audio'],
        'a body cut before its first byte': [{ headers: { 'content-type': 'audio/mpeg' }, then: 'destroy' }, 'failed before its first byte'],
      } as const)[label] as [RawAnswer, string]
      broken = raw
      const { model, primary, backup } = await pair('tts-ac', 'openai', good)
      await setPrice({ model, input: '0', output: '0', perCharacter: '0.00001' })
      await refreshCaches()
      const user = await seedUser({ balance: '1' })
      const response = await post('/v1/audio/speech', { model, input: 'Hello there', voice: 'alloy' }, { authorization: `Bearer ${user.key}` })
      assert.equal(response.status, 200)
      assert.equal(response.headers.get('content-type'), 'audio/mpeg')
      assert.isTrue(Buffer.from(await response.arrayBuffer()).equals(mockSpeechBytes()), 'the backup\'s audio, whole')
      const { rows, attempts, error } = await recordOf(user.userId)
      assert.lengthOf(rows, 1)
      assert.include(rows[0], { channel_id: backup.id, status: 200, error_code: null, attempts: 2, characters: 11 })
      assert.deepEqual(attempts, [[primary.id, 200, 'invalid_answer'], [backup.id, 200, 'ok']])
      assert.include(error, reason)
      assert.equal((await gateway()).health.stateOf(primary.id).failures, 1)
      const money = await balanceAndLedger(user.userId)
      assert.equal(rows[0].cost, '0.000110000000')
      assert.equal(money.balance, '0.999890000000')
    })

  test('count_tokens: {$self} under a 200 fails over to the next channel\'s count')
    .with(['a JSON error body', 'an empty body', 'no input_tokens', 'a count as a string', 'an HTML page'])
    .run(async ({ assert }, label) => {
      const [raw, reason] = ({
        'a JSON error body': [JSON_ERROR, 'quota exhausted'],
        'an empty body': [EMPTY_JSON, 'not valid JSON'],
        'no input_tokens': [{ body: '{"type":"message"}' }, 'without its token count'],
        'a count as a string': [{ body: '{"input_tokens":"12"}' }, 'without its token count'],
        'an HTML page': [HTML, 'not valid JSON'],
      } as const)[label] as [RawAnswer, string]
      broken = raw
      const { model, primary, backup } = await pair('claude-ac', 'anthropic', good)
      const user = await seedUser()
      const response = await post('/v1/messages/count_tokens', { model, messages: [{ role: 'user', content: 'Hello!' }] }, { 'x-api-key': user.key })
      assert.equal(response.status, 200)
      assert.deepEqual(await response.json(), { input_tokens: 12 })
      const { rows, attempts, error } = await recordOf(user.userId)
      assert.include(rows[0], { endpoint: 'messages.count_tokens', channel_id: backup.id, status: 200, attempts: 2 })
      assert.deepEqual(attempts, [[primary.id, 200, 'invalid_answer'], [backup.id, 200, 'ok']])
      assert.include(error, reason)
      assert.equal((await gateway()).health.stateOf(primary.id).failures, 1)
    })

  test('no channel left: the 502 in the client\'s format, one row, attempts 2, nothing charged ({$self})')
    .with(['transcriptions', 'speech', 'count_tokens'] as const)
    .run(async ({ assert }, kind) => {
      broken = JSON_ERROR
      const { model, primary, backup } = await pair(kind === 'count_tokens' ? 'claude-doomed' : 'audio-doomed', kind === 'count_tokens' ? 'anthropic' : 'openai', bad)
      await setPrice({ model, input: '1', output: '1', perSecond: '0.001', perCharacter: '0.001' })
      await refreshCaches()
      const user = await seedUser({ balance: '1' })
      const response =
        kind === 'transcriptions'
          ? await upload('/v1/audio/transcriptions', user.key, [['file', wavFile(1000), 'a.wav'], ['model', model]])
          : kind === 'speech'
            ? await post('/v1/audio/speech', { model, input: 'Hello', voice: 'alloy' }, { authorization: `Bearer ${user.key}` })
            : await post('/v1/messages/count_tokens', { model, messages: [{ role: 'user', content: 'Hi' }] }, { 'x-api-key': user.key })
      assert.equal(response.status, 502)
      const body: any = await response.json()
      if (kind === 'count_tokens') assert.deepEqual([body.type, body.error.type], ['error', 'api_error'])
      else assert.equal(body.error.code, 'provider_error')
      assert.include(JSON.stringify(body), 'quota exhausted')
      const { rows, attempts } = await recordOf(user.userId)
      assert.lengthOf(rows, 1)
      assert.include(rows[0], { status: 502, error_code: 'provider_error', attempts: 2 })
      assert.equal(Number(rows[0].cost), 0)
      assert.deepEqual(attempts, [[primary.id, 200, 'invalid_answer'], [backup.id, 200, 'invalid_answer']])
      const money = await balanceAndLedger(user.userId)
      assert.equal(Number(money.balance), 1)
      assert.equal(money.balance, money.ledger)
      assert.deepEqual(await ledgerProblems(), [])
    })

  test('the channel test (panel, management API): an answer that is no answer is a failure with its reason, counted on the channel', async ({ assert }) => {
    n++
    const model = `probe-${n}`
    const channel = await seedChannel({ name: `ac-probe-${n}`, baseUrl: bad.url, models: [model] })
    const health = (await gateway()).health
    for (const [raw, reason] of [
      [JSON_ERROR, 'quota exhausted'],
      [HTML, 'not valid JSON'],
      [{ body: '{"id":"x","object":"chat.completion","choices":[]}' }, 'without its content'],
    ] as const) {
      broken = raw
      health.reset()
      const result = await testChannel(channel.id, model)
      assert.isFalse(result.ok, reason)
      assert.equal(result.status, 200, reason)
      assert.isNull(result.text, reason)
      assert.include(result.error, reason)
      assert.equal(health.stateOf(channel.id).failures, 1, reason)
    }
    // A real answer still passes.
    const fine = await seedChannel({ name: `ac-fine-${n}`, baseUrl: good.url, models: [model] })
    const passed = await testChannel(fine.id, model)
    assert.isTrue(passed.ok)
    assert.isString(passed.text)
  })

  test('channel:test: a 2xx that is no list of models, or a redirect, fails with its reason; a list passes', async ({ assert }) => {
    n++
    const channel = await seedChannel({ name: `ac-key-${n}`, baseUrl: bad.url, models: ['x'] })
    // The key check's wording is the model list client's (services/upstream_model_list.ts), shared with Fetch models.
    for (const [raw, reason] of [
      [HTML, 'upstream answered HTTP 200 with text/html, not JSON (check the base URL): <!DOCTYPE html>'],
      [JSON_ERROR, 'upstream answered HTTP 200 with an error: quota exhausted'],
      [{ body: '{"object":"list"}' }, 'no model list (no "data" array)'],
      [EMPTY_JSON, 'upstream answered HTTP 200 with an empty body, not a model list: check the base URL'],
      [{ status: 302, headers: { location: 'https://example.test/login' }, body: '' }, 'upstream answered HTTP 302, a redirect to https://example.test/login, not followed'],
    ] as const) {
      broken = raw
      const checked = await checkChannelKey(channel.id)
      assert.isFalse(checked.ok, reason)
      assert.include(checked.message, reason)
      assert.notInclude(checked.message, 'Model list:', 'the check says its own line, without the Fetch models prefix')
    }
    const fine = await seedChannel({ name: `ac-key-fine-${n}`, baseUrl: good.url, models: ['x'] })
    const passed = await checkChannelKey(fine.id)
    assert.isTrue(passed.ok)
    assert.equal(passed.status, 200)
    assert.equal(passed.message, 'upstream listed 2 models')
  })
})
