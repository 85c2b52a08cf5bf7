import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import { overview, usagePage } from '#services/portal_report'
import { setPrice } from '#actions/set_price'
import { toPico } from '#gateway/metering/money'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { balanceAndLedger, gateway, meterEvent, post, refreshCaches, resetDatabase, seedChannel, seedUser, startMock, usageRows } from '#tests/helpers'
import { ledgerProblems } from '#tests/money_checks'

/**
 * Billing exactness: what a request costs is what the price table says, to
 * the pico-USD, whichever way its answer came (whole or streamed, with or
 * without the upstream's usage), and the ledger, the balance and the rows
 * agree.
 */

const auth = (key: string) => ({ authorization: `Bearer ${key}` })
const hello = [{ role: 'user', content: 'hello there' }]

/** A whole chat completion with these choices' texts and no usage (some OpenAI-compatible servers send none). */
function chatAnswer(texts: string[]) {
  return JSON.stringify({
    id: 'chatcmpl-raw',
    object: 'chat.completion',
    created: 1,
    model: 'raw',
    choices: texts.map((content, index) => ({ index, message: { role: 'assistant', content }, finish_reason: 'stop' })),
  })
}

test.group('Billing exactness: which price applies', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock({ text: 'one two three' })
    await seedChannel({ name: 'mock', baseUrl: mock.url, models: ['*'] })
    return () => mock.stop()
  })

  test('two fallback globs as specific match a model: the same list applies before and after either is edited', async ({ assert }) => {
    const { setModelFallbacks } = await import('#actions/set_model_fallbacks')
    const catalog = (await gateway()).catalog
    await setModelFallbacks({ model: 'fb-*', fallbacks: ['first-list'] })
    await setModelFallbacks({ model: '*-zz', fallbacks: ['second-list'] })
    await refreshCaches()
    // "*-zz" comes first in code-point order, whichever row Postgres returns first.
    assert.deepEqual([...catalog.fallbacksFor('fb-zz')], ['second-list'])
    await setModelFallbacks({ model: '*-zz', fallbacks: ['second-list', 'more'] })
    await setModelFallbacks({ model: 'fb-*', fallbacks: ['first-list', 'edited'] })
    await refreshCaches()
    assert.deepEqual([...catalog.fallbacksFor('fb-zz')], ['second-list', 'more'])
  })

  test('two globs as specific match a model: the same one applies before and after either is edited', async ({ assert }) => {
    // Both have 3 literal characters. The rule: the pattern first in code-point order, "*-yz".
    await setPrice({ model: 'ab-*', input: '1', output: '1' })
    await setPrice({ model: '*-yz', input: '2', output: '2' })
    await refreshCaches()
    const user = await seedUser({ balance: '1' })
    const ask = async () => {
      const answer = await post('/v1/chat/completions', { model: 'ab-yz', messages: hello }, auth(user.key))
      assert.equal(answer.status, 200)
      const rows = await usageRows(user.userId)
      return rows[rows.length - 1]
    }
    const first = await ask()
    assert.equal(toPico(first.cost), BigInt(first.prompt_tokens + first.completion_tokens) * 2_000_000n)
    // An edit of the other glob (Postgres moves the edited row to the end of the table) changes nothing.
    await setPrice({ model: 'ab-*', input: '1.5', output: '1' })
    await refreshCaches()
    const second = await ask()
    assert.equal(toPico(second.cost), BigInt(second.prompt_tokens + second.completion_tokens) * 2_000_000n)
    await setPrice({ model: '*-yz', input: '2', output: '2.5' })
    await refreshCaches()
    const third = await ask()
    assert.equal(toPico(third.cost), BigInt(third.prompt_tokens) * 2_000_000n + BigInt(third.completion_tokens) * 2_500_000n)
    // An exact name beats every glob.
    await setPrice({ model: 'ab-yz', input: '7', output: '7' })
    await refreshCaches()
    const exact = await ask()
    assert.equal(toPico(exact.cost), BigInt(exact.prompt_tokens + exact.completion_tokens) * 7_000_000n)
    assert.deepEqual(await ledgerProblems(), [])
  })
})

/** The same choices as a stream without usage: each chunk carries one choice under its index, as OpenAI streams n > 1. */
function chatStream(texts: string[]) {
  const chunk = (choice: Record<string, unknown>) =>
    `data: ${JSON.stringify({ id: 'chatcmpl-raw', object: 'chat.completion.chunk', created: 1, model: 'raw', choices: [choice] })}\n\n`
  const chunks: string[] = []
  texts.forEach((text, index) => {
    for (const word of text.split(/(?<= )/)) chunks.push(chunk({ index, delta: { content: word }, finish_reason: null }))
    chunks.push(chunk({ index, delta: {}, finish_reason: 'stop' }))
  })
  chunks.push('data: [DONE]\n\n')
  return { headers: { 'content-type': 'text/event-stream' }, chunks }
}

test.group('Billing exactness: answers without usage', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'mock', baseUrl: mock.url, models: ['*'] })
    await setPrice({ model: 'counted-*', input: '3', output: '15' })
    await refreshCaches()
    return () => mock.stop()
  })

  test('n > 1 without usage: every choice is counted, whole or streamed alike', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const texts = ['The first answer is here.\n', 'A second, longer answer comes next.\n', 'And a third one ends it.\n']
    const ask = async (body: Record<string, unknown>) => {
      const answer = await post('/v1/chat/completions', { model: 'counted-n', messages: hello, ...body }, auth(user.key))
      assert.equal(answer.status, 200)
      await answer.text()
      const rows = await usageRows(user.userId)
      return rows[rows.length - 1]
    }
    const one = await ask({ mock: { raw: { body: chatAnswer(texts.slice(0, 1)) } } })
    const whole = await ask({ n: 3, mock: { raw: { body: chatAnswer(texts) } } })
    const streamed = await ask({ n: 3, stream: true, mock: { raw: chatStream(texts) } })
    for (const row of [one, whole, streamed]) assert.isTrue(row.estimated)
    // Three answers are three answers' tokens (the first alone is about a third), at the output price.
    assert.isAbove(whole.completion_tokens, 2 * one.completion_tokens)
    assert.equal(whole.completion_tokens, streamed.completion_tokens)
    assert.equal(whole.prompt_tokens, streamed.prompt_tokens)
    assert.equal(whole.cost, streamed.cost)
    assert.equal(toPico(whole.cost), BigInt(whole.prompt_tokens) * 3_000_000n + BigInt(whole.completion_tokens) * 15_000_000n)
    const money = await balanceAndLedger(user.userId)
    assert.equal(toPico(money.balance), toPico('1') - toPico(one.cost) - toPico(whole.cost) - toPico(streamed.cost))
    assert.deepEqual(await ledgerProblems(), [])
  })
})

test.group('Billing exactness: the portal counts UTC days and months whatever the database time zone', (group) => {
  group.setup(async () => {
    await resetDatabase()
  })

  /**
   * The app's queries run in one transaction whose session time zone is `zone` (a Postgres set up
   * with a local time zone). Not ALTER DATABASE and a reconnect: closing the Lucid connection breaks
   * every query client made from it before (the limiter's database store keeps one), and with it
   * every later test.
   */
  async function databaseTimeZone(zone: string) {
    await db.beginGlobalTransaction()
    await db.rawQuery(`SET LOCAL timezone TO '${zone}'`)
  }

  test("the month's spend and a usage log's last day end at UTC midnight", async ({ assert, cleanup }) => {
    const user = await seedUser({ balance: '1' })
    const now = new Date()
    const monthStart = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1)
    const todayStart = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate())
    // Charged an hour into the month (UTC), and a minute into today (UTC).
    const gw = await gateway()
    const early = { ...meterEvent(user.userId), createdAt: new Date(Math.min(monthStart + 3_600_000, now.getTime())) }
    const today = { ...meterEvent(user.userId), createdAt: new Date(Math.min(todayStart + 60_000, now.getTime())) }
    gw.meter.record(early)
    gw.meter.record(today)
    await gw.meter.drain()

    cleanup(() => db.rollbackGlobalTransaction())
    // Honolulu is UTC-10: its midnight is 10:00 UTC.
    await databaseTimeZone('Pacific/Honolulu')
    const { rows } = await db.rawQuery('SHOW timezone')
    assert.equal(rows[0].TimeZone, 'Pacific/Honolulu')

    const [counters] = await db.from('monthly_usage').where('user_id', user.userId).select(db.raw('sum(cost)::text AS cost'))
    assert.equal(counters.cost, '0.002000000000')
    assert.equal((await overview(user.userId, now)).spend, counters.cost)

    const yesterday = new Date(todayStart - 86_400_000).toISOString().slice(0, 10)
    const monthFirst = new Date(monthStart).toISOString().slice(0, 10)
    const untilYesterday = await usagePage(user.userId, { from: monthFirst, to: yesterday }, 1)
    const expected = early.createdAt.getTime() < todayStart ? [early.createdAt.getTime()] : []
    assert.deepEqual(untilYesterday.rows.map((r: any) => new Date(r.created_at).getTime()), expected)
  })
})

test.group('Billing exactness: holds on per-image prices', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'mock', baseUrl: mock.url, models: ['*'] })
    await setPrice({ model: 'held-image', input: '0', output: '0', perImage: '0.04' })
    await refreshCaches()
    return () => mock.stop()
  })

  test('concurrent image requests hold their images: the balance is overdrawn by at most one request', async ({ assert }) => {
    const user = await seedUser({ balance: '0.05' })
    const statuses = await Promise.all(
      Array.from({ length: 8 }, () =>
        post('/v1/images/generations', { model: 'held-image', prompt: 'a cat', mock: { latency_ms: 300 } }, auth(user.key)).then(async (r) => {
          await r.arrayBuffer()
          return r.status
        })
      )
    )
    // $0.05 holds one image at $0.04 with money left, then a second: the rest are refused.
    assert.equal(statuses.filter((s) => s === 200).length, 2)
    assert.equal(statuses.filter((s) => s === 402).length, 6)
    const money = await balanceAndLedger(user.userId)
    assert.equal(money.balance, '-0.030000000000')
    assert.deepEqual(await ledgerProblems(), [])
    // A request for n images holds n: back at $0.05, the first call for two holds $0.08 and the second is refused.
    await (await import('#actions/post_ledger_entry')).postLedgerEntry({ userRef: user.email, kind: 'topup', amount: '0.08' })
    await refreshCaches()
    const pair = await Promise.all(
      Array.from({ length: 2 }, () =>
        post('/v1/images/generations', { model: 'held-image', prompt: 'two cats', n: 2, mock: { latency_ms: 300 } }, auth(user.key)).then(async (r) => {
          await r.arrayBuffer()
          return r.status
        })
      )
    )
    assert.deepEqual(pair.sort(), [200, 402])
    assert.equal((await balanceAndLedger(user.userId)).balance, '-0.030000000000')
  })
})

test.group('Billing exactness: reasoning tokens', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'chat-server', baseUrl: mock.url, models: ['*'] })
    // 1,000,000 pico-USD an input token, 10,000,000 an output token.
    await setPrice({ model: 'thinker-*', input: '1', output: '10' })
    await refreshCaches()
    return () => mock.stop()
  })

  /** A chat answer whose usage is `usage`, whole or as a stream ending with a usage chunk. */
  function answerWith(usage: Record<string, unknown>, stream: boolean) {
    if (!stream) return { body: JSON.stringify({ ...JSON.parse(chatAnswer(['Four.'])), usage }) }
    const chunk = (extra: Record<string, unknown>) => `data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', created: 1, model: 'raw', ...extra })}\n\n`
    return {
      headers: { 'content-type': 'text/event-stream' },
      chunks: [
        chunk({ choices: [{ index: 0, delta: { role: 'assistant', content: 'Four.' }, finish_reason: null }] }),
        chunk({ choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] }),
        chunk({ choices: [], usage }),
        'data: [DONE]\n\n',
      ],
    }
  }

  test('reasoning is billed as output once: inside completion_tokens (OpenAI) or beside it (xAI), whole or streamed', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    // OpenAI: 300 completion tokens of which 200 reasoning. xAI (Grok): 100 completion tokens and 200 reasoning beside them.
    const openai = { prompt_tokens: 40, completion_tokens: 300, total_tokens: 340, completion_tokens_details: { reasoning_tokens: 200 } }
    const xai = { prompt_tokens: 40, completion_tokens: 100, total_tokens: 340, completion_tokens_details: { reasoning_tokens: 200 } }
    for (const usage of [openai, xai]) {
      for (const stream of [false, true]) {
        const answer = await post('/v1/chat/completions', { model: 'thinker-a', messages: hello, stream, mock: { raw: answerWith(usage, stream) } }, auth(user.key))
        assert.equal(answer.status, 200)
        await answer.text()
        const rows = await usageRows(user.userId)
        const row = rows[rows.length - 1]
        const label = `${usage === openai ? 'openai' : 'xai'} stream=${stream}`
        assert.include(row, { prompt_tokens: 40, completion_tokens: 300, reasoning_tokens: 200, estimated: false }, label)
        assert.equal(toPico(row.cost), 40n * 1_000_000n + 300n * 10_000_000n, label)
      }
    }
    // Translated for an Anthropic client: its output_tokens are the 300 billed.
    mock.script({ raw: answerWith(xai, false) })
    const translated = await post('/v1/messages', { model: 'thinker-b', max_tokens: 500, messages: hello }, { 'x-api-key': user.key, 'anthropic-version': '2023-06-01' })
    assert.equal(translated.status, 200)
    assert.include(((await translated.json()) as any).usage, { input_tokens: 40, output_tokens: 300 })
    const rows = await usageRows(user.userId)
    assert.equal(toPico(rows[rows.length - 1].cost), 40n * 1_000_000n + 300n * 10_000_000n)
    const money = await balanceAndLedger(user.userId)
    assert.equal(money.balance, money.ledger)
    assert.deepEqual(await ledgerProblems(), [])
  })
})

test.group('Billing exactness: many tiny charges', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock({ text: 'one two three' })
    await seedChannel({ name: 'mock', baseUrl: mock.url, models: ['*'] })
    // One pico-USD an input token (the smallest price), and an output price that no plan ratio divides evenly.
    await setPrice({ model: 'tiny-model', input: '0.000001', output: '0.333333' })
    await refreshCaches()
    return () => mock.stop()
  })

  test('rows, monthly counters, ledger, balance, key spend and the account endpoints agree to the pico', async ({ assert }) => {
    const user = await seedUser({ balance: '1', plan: { name: 'odd', priceMultiplier: '1.0007' } })
    await Promise.all(
      Array.from({ length: 60 }, (_, i) =>
        post('/v1/chat/completions', { model: 'tiny-model', messages: hello, stream: i % 2 === 0 }, auth(user.key)).then((r) => r.text())
      )
    )
    await (await gateway()).meter.drain()
    const { rows } = await db.rawQuery(
      `SELECT (SELECT sum(cost)::text FROM usage_records WHERE user_id = ?) AS rows,
              (SELECT count(*)::int FROM usage_records WHERE user_id = ? AND status = 200) AS ok,
              (SELECT sum(cost)::text FROM monthly_usage WHERE user_id = ?) AS counters,
              (SELECT (-sum(amount))::text FROM balance_ledger WHERE user_id = ? AND kind = 'charge') AS charges,
              (SELECT spent::text FROM api_keys WHERE user_id = ?) AS key_spent,
              (SELECT balance::text FROM users WHERE id = ?) AS balance`,
      Array(6).fill(user.userId)
    )
    const sums = rows[0]
    assert.equal(sums.ok, 60)
    // Per token at 1.0007x: 1 pico in (rounded), 333,566.3331 -> 333,566 pico out; 12 in and 3 out a request.
    const perRequest = 12n * 1n + 3n * 333_566n
    assert.equal(toPico(sums.rows), 60n * perRequest)
    for (const figure of [sums.counters, sums.charges, sums.key_spent]) assert.equal(figure, sums.rows)
    assert.equal(toPico(sums.balance), toPico('1') - 60n * perRequest)
    const balance = (await (await fetch(`http://127.0.0.1:${process.env.PORT}/v1/balance`, { headers: auth(user.key) })).json()) as any
    assert.equal(toPico(String(balance.total_spent)), 60n * perRequest)
    assert.deepEqual(await ledgerProblems(), [])
  })
})


test.group('Billing exactness: a cost past what the columns hold', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'mock', baseUrl: mock.url, models: ['*'] })
    // The largest price the table takes: two images cost ~$2 * 10^12, past numeric(24,12).
    await setPrice({ model: 'dear-image', input: '0', output: '0', perImage: '999999999999' })
    await refreshCaches()
    return () => mock.stop()
  })

  test('is billed at $1,000,000,000: the row and its charge are written, not lost', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const answer = await post('/v1/images/generations', { model: 'dear-image', prompt: 'two cats', n: 2 }, auth(user.key))
    assert.equal(answer.status, 200)
    await answer.arrayBuffer()
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 1)
    assert.equal(rows[0].cost, '1000000000.000000000000')
    const money = await balanceAndLedger(user.userId)
    assert.equal(money.balance, '-999999999.000000000000')
    assert.deepEqual(await ledgerProblems(), [])
  })
})
