import { test } from '@japa/runner'
import ace from '@adonisjs/core/services/ace'
import db from '@adonisjs/lucid/services/db'
import PriceSet from '#commands/price_set'
import { createApiKey } from '#actions/issue_api_key'
import { createUser } from '#actions/create_user'
import { setPrice } from '#actions/set_price'
import { toPico } from '#gateway/metering/money'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { PanelClient, textOf } from '#tests/panel_client'
import { adminApi, balanceAndLedger, baseUrl, post, refreshCaches, resetDatabase, seedChannel, seedUser, startMock, usageRows } from '#tests/helpers'
import { ledgerProblems } from '#tests/money_checks'

/**
 * Anthropic's one-hour prompt cache (`cache_control: {type: "ephemeral", ttl:
 * "1h"}`, which Claude Code sends with ENABLE_PROMPT_CACHING_1H) bills a write
 * at 2x the input price, against 1.25x for the five-minute default, and
 * reports the two apart in `usage.cache_creation`. A model priced with a
 * one-hour write price (`--cache-write-1h`, `cache_write_1h`, the Prices
 * form) bills those writes at it; the others at the cache-write price.
 */

const M = 1_000_000n
const anthropicHeaders = (key: string) => ({ 'x-api-key': key, 'anthropic-version': '2023-06-01' })
const usage = {
  input_tokens: 10,
  cache_read_input_tokens: 200,
  cache_creation_input_tokens: 1000,
  cache_creation: { ephemeral_5m_input_tokens: 400, ephemeral_1h_input_tokens: 600 },
  output_tokens: 20,
}
// claude-sonnet at $3 in, $15 out, $0.30 cache read, $3.75 cache write, $6 one-hour write (per 1M):
// 10 x 3 + 200 x 0.3 + 400 x 3.75 + 600 x 6 + 20 x 15
const EXPECTED = 10n * 3n * M + 200n * 300_000n + 400n * 3_750_000n + 600n * 6n * M + 20n * 15n * M

/** An Anthropic answer with `usage`, whole, or streamed with the usage in message_start and the output count in message_delta. */
function anthropicWith(stream: boolean) {
  const message = { id: 'msg_raw', type: 'message', role: 'assistant', model: 'raw', content: [{ type: 'text', text: 'Hi.' }], stop_reason: 'end_turn', stop_sequence: null, usage }
  if (!stream) return { body: JSON.stringify(message) }
  const event = (type: string, data: Record<string, unknown>) => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`
  return {
    headers: { 'content-type': 'text/event-stream' },
    chunks: [
      event('message_start', { message: { ...message, content: [], stop_reason: null, usage: { ...usage, output_tokens: 1 } } }),
      event('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }),
      event('content_block_delta', { index: 0, delta: { type: 'text_delta', text: 'Hi.' } }),
      event('content_block_stop', { index: 0 }),
      event('message_delta', { delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: 20 } }),
      event('message_stop', {}),
    ],
  }
}

test.group("Anthropic's one-hour cache writes at their own price", (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'claude', provider: 'anthropic', baseUrl: mock.url, models: ['claude-*'] })
    await setPrice({ model: 'claude-sonnet-*', input: '3', output: '15', cacheRead: '0.3', cacheWrite: '3.75', cacheWrite1h: '6' })
    await refreshCaches()
    return () => mock.stop()
  })

  test('price:set --cache-write-1h; Claude Code passed through (whole and streamed) and an OpenAI client translated are billed the one-hour writes at it', async ({ assert }) => {
    // The command sets what the group's setup set: its flag is read
    await setPrice({ model: 'claude-sonnet-*', input: '3', output: '15', cacheWrite1h: null })
    const command = await ace.create(PriceSet, ['--model', 'claude-sonnet-*', '--input', '3', '--output', '15', '--cache-write-1h', '6'])
    ace.ui.switchMode('raw')
    await command.exec()
    command.assertSucceeded()
    assert.include(await db.from('model_prices').where('model_pattern', 'claude-sonnet-*').first(), { cache_write_per_million: '3.750000', cache_write_1h_per_million: '6.000000' })
    await refreshCaches()
    const user = await seedUser({ balance: '1' })

    for (const stream of [false, true]) {
      const answer = await post(
        '/v1/messages?beta=true',
        {
          model: 'claude-sonnet-4-5',
          max_tokens: 64,
          stream,
          system: [{ type: 'text', text: 'You are Claude Code.', cache_control: { type: 'ephemeral', ttl: '1h' } }],
          messages: [{ role: 'user', content: 'hi' }],
          mock: { raw: anthropicWith(stream) },
        },
        anthropicHeaders(user.key)
      )
      assert.equal(answer.status, 200)
      await answer.text()
      const rows = await usageRows(user.userId)
      const row = rows[rows.length - 1]
      assert.include(row, { prompt_tokens: 1210, completion_tokens: 20, cached_tokens: 200, cache_write_tokens: 1000, estimated: false }, `stream=${stream}`)
      assert.equal(toPico(row.cost), EXPECTED, `stream=${stream}`)
    }

    // Translated: the OpenAI SDK's chat to the same Claude model
    mock.script({ raw: anthropicWith(false) })
    const chat = await post('/v1/chat/completions', { model: 'claude-sonnet-4-5', messages: [{ role: 'user', content: 'hi' }], usage: { include: true } }, { authorization: `Bearer ${user.key}` })
    assert.equal(chat.status, 200)
    const body = (await chat.json()) as any
    assert.equal(body.usage.cost, Number(EXPECTED) / 1e12)
    const rows = await usageRows(user.userId)
    assert.equal(toPico(rows[rows.length - 1].cost), EXPECTED)

    const money = await balanceAndLedger(user.userId)
    assert.equal(money.balance, money.ledger)
    assert.deepEqual(await ledgerProblems(), [])
  })

  test("without a one-hour price they cost the cache-write price, as before; a plan's multiplier scales the one-hour price too", async ({ assert }) => {
    await setPrice({ model: 'claude-opus-*', input: '3', output: '15', cacheRead: '0.3', cacheWrite: '3.75' })
    await refreshCaches()
    const user = await seedUser({ balance: '1' })
    const answer = await post('/v1/messages', { model: 'claude-opus-4-1', max_tokens: 64, messages: [{ role: 'user', content: 'hi' }], mock: { raw: anthropicWith(false) } }, anthropicHeaders(user.key))
    assert.equal(answer.status, 200)
    await answer.text()
    let rows = await usageRows(user.userId)
    assert.equal(toPico(rows[rows.length - 1].cost), 10n * 3n * M + 200n * 300_000n + 1000n * 3_750_000n + 20n * 15n * M)

    const half = await seedUser({ balance: '1', plan: { name: 'half-price', models: ['*'], priceMultiplier: '0.5' } })
    const scaled = await post('/v1/messages', { model: 'claude-sonnet-4-5', max_tokens: 64, messages: [{ role: 'user', content: 'hi' }], mock: { raw: anthropicWith(false) } }, anthropicHeaders(half.key))
    assert.equal(scaled.status, 200)
    await scaled.text()
    rows = await usageRows(half.userId)
    assert.equal(toPico(rows[rows.length - 1].cost), EXPECTED / 2n)

    // A one-hour count past the writes, or one that cannot be believed, is held to them / ignored
    for (const hour of [5000, -3]) {
      const odd = { ...usage, cache_creation: { ephemeral_5m_input_tokens: 0, ephemeral_1h_input_tokens: hour } }
      const raw = { body: JSON.stringify({ id: 'm', type: 'message', role: 'assistant', model: 'raw', content: [{ type: 'text', text: 'x' }], stop_reason: 'end_turn', usage: odd }) }
      const reply = await post('/v1/messages', { model: 'claude-sonnet-4-5', max_tokens: 64, messages: [{ role: 'user', content: 'hi' }], mock: { raw } }, anthropicHeaders(user.key))
      assert.equal(reply.status, 200, String(hour))
      await reply.text()
      rows = await usageRows(user.userId)
      const writes = hour > 0 ? 1000n * 6n * M : 1000n * 3_750_000n
      assert.equal(toPico(rows[rows.length - 1].cost), 10n * 3n * M + 200n * 300_000n + writes + 20n * 15n * M, String(hour))
    }
    assert.deepEqual(await ledgerProblems(), [])
  })

  test('the management API, the Prices form and LiteLLM model info carry the one-hour price', async ({ assert }) => {
    await createUser({ email: 'ops-1h@test.local', password: 'password123', role: 'admin' })
    const adminKey = (await createApiKey({ userRef: 'ops-1h@test.local', name: 'ops', manage: true })).key
    const set = await adminApi('POST', '/prices', adminKey, { model: 'claude-haiku-*', input: '1', output: '5', cache_write: '1.25', cache_write_1h: 2 })
    assert.equal(set.status, 200)
    assert.include(set.body, { cache_write: '1.25', cache_write_1h: '2' })
    const listed = await adminApi('GET', '/prices', adminKey)
    assert.include(listed.body.data.find((p: any) => p.model === 'claude-haiku-*'), { cache_write_1h: '2' })
    const refused = await adminApi('POST', '/prices', adminKey, { model: 'claude-haiku-*', input: '1', output: '5', cache_write_1h: '-1' })
    assert.equal(refused.status, 400)
    const cleared = await adminApi('POST', '/prices', adminKey, { model: 'claude-haiku-*', input: '1', output: '5', cache_write_1h: null })
    assert.include(cleared.body, { cache_write: '1.25', cache_write_1h: null })

    const panel = new PanelClient()
    await panel.login('ops-1h@test.local', 'password123')
    await panel.get('/admin/prices')
    await panel.post('/admin/prices', { model: 'claude-panel-*', input: '3', output: '15', cacheWrite: '3.75', cacheWrite1h: '6' })
    const saved = await db.from('model_prices').where('model_pattern', 'claude-panel-*').first()
    assert.include(saved, { cache_write_per_million: '3.750000', cache_write_1h_per_million: '6.000000' })
    const listedText = textOf((await panel.get('/admin/prices')).html)
    assert.include(listedText, '$3.75 $6.00 1h')
    assert.notInclude(listedText, '@if')
    assert.include((await panel.get(`/admin/prices?edit=${saved.id}`)).html, 'name="cacheWrite1h"')

    // LiteLLM's model info (Cline's cost): its field for the one-hour write (an exact price name is listed)
    await setPrice({ model: 'claude-info-1', input: '3', output: '15', cacheWrite: '3.75', cacheWrite1h: '6' })
    await refreshCaches()
    const user = await seedUser({ balance: '1' })
    const info = await fetch(`${baseUrl()}/v1/model/info?litellm_model_id=claude-info-1`, { headers: { authorization: `Bearer ${user.key}` } })
    const sonnet = ((await info.json()) as any).data[0].model_info
    assert.equal(sonnet.cache_creation_input_token_cost, 0.00000375)
    assert.equal(sonnet.cache_creation_input_token_cost_above_1hr, 0.000006)
  })
})
