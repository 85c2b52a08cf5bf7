import { test } from '@japa/runner'
import app from '@adonisjs/core/services/app'
import db from '@adonisjs/lucid/services/db'
import { UsageMeter } from '#gateway/metering/usage_meter'
import { numberColumn, textColumn, booleanColumn } from '#gateway/metering/pg_array'
import { balanceAndLedger, meterEvent, resetDatabase, seedChannel, seedUser } from '#tests/helpers'

/** Strings an array literal must carry unchanged: its own syntax, escapes, the word NULL, non-ASCII. */
const AWKWARD = [
  'plain',
  'with "quotes"',
  'back\\slash and \\"both\\"',
  'comma, {braces}, and spaces  ',
  'NULL',
  '',
  'ünïcödé 模型 🚀',
  'line\nbreak\ttab',
]

test.group('Metering columns (unnest of array literals)', (group) => {
  group.setup(async () => {
    await resetDatabase()
  })

  test('array literals: NULL, booleans, quoting', ({ assert }) => {
    const rows = [{ n: 1, b: true, t: 'a"b' }, { n: null, b: false, t: null }, { b: undefined, t: 'x\\y' }]
    assert.equal(numberColumn(rows, 'n'), '{1,NULL,NULL}')
    assert.equal(numberColumn([{ n: Number.NaN }, { n: Number.POSITIVE_INFINITY }, { n: -2.5 }], 'n'), '{NULL,NULL,-2.5}')
    assert.equal(numberColumn([{ n: '42' }, { n: 7n }], 'n'), '{"42","7"}')
    assert.equal(booleanColumn(rows, 'b'), '{t,f,NULL}')
    assert.equal(textColumn(rows, 't'), '{"a\\"b",NULL,"x\\\\y"}')
    assert.equal(textColumn([], 't'), '{}')
  })

  test('awkward model names, error codes and attempt errors are stored as sent; NUL is dropped, not fatal', async ({
    assert,
    cleanup,
  }) => {
    const user = await seedUser({ balance: '1' })
    const channel = await seedChannel({ baseUrl: 'http://127.0.0.1:9' })
    const logger = await app.container.make('logger')
    const meter = new UsageMeter({ connectionString: process.env.DATABASE_URL!, batchSize: 100, flushMs: 5, logger })
    cleanup(() => meter.close(2000))

    const events = AWKWARD.map((text, i) => {
      const event = meterEvent(user.userId, `model ${text}`)
      event.errorCode = text
      event.servedModel = i % 2 === 0 ? null : text
      event.ttftMs = i % 2 === 0 ? null : i
      event.stream = i % 2 === 0
      event.attemptCount = 2
      event.attempts = [
        { attempt: 1, channelId: channel.id, status: 502, outcome: 'http_error', error: `upstream said ${text}`, latencyMs: 3 },
        { attempt: 2, channelId: channel.id, status: 200, outcome: 'ok', error: null, latencyMs: 4 },
      ]
      return event
    })
    const withNul = meterEvent(user.userId, 'nul-model')
    withNul.attempts = [{ attempt: 1, channelId: channel.id, status: 500, outcome: 'http_error', error: 'before\u0000after', latencyMs: 1 }]
    for (const event of [...events, withNul]) meter.record(event)
    await meter.drain()

    const rows = await db
      .from('usage_records')
      .where('user_id', user.userId)
      .select('request_id', 'model', 'served_model', 'error_code', 'ttft_ms', 'stream', 'cost')
    assert.lengthOf(rows, events.length + 1)
    const byId = new Map(rows.map((row) => [row.request_id, row]))
    for (const [i, event] of events.entries()) {
      const row = byId.get(event.requestId)!
      assert.equal(row.model, `model ${AWKWARD[i]}`)
      assert.equal(row.error_code, AWKWARD[i])
      assert.equal(row.served_model, event.servedModel)
      assert.equal(row.ttft_ms, event.ttftMs)
      assert.equal(row.stream, event.stream)
      assert.equal(Number(row.cost), 0.001)
    }
    const attempts = await db
      .from('request_attempts')
      .whereIn('request_id', [...events, withNul].map((e) => e.requestId))
      .select('request_id', 'attempt', 'error', 'status')
    assert.lengthOf(attempts, events.length * 2 + 1)
    for (const [i, event] of events.entries()) {
      const first = attempts.find((a) => a.request_id === event.requestId && a.attempt === 1)
      assert.equal(first.error, `upstream said ${AWKWARD[i]}`)
      assert.equal(first.status, 502)
    }
    assert.equal(attempts.find((a) => a.request_id === withNul.requestId).error, 'beforeafter')

    const money = await balanceAndLedger(user.userId)
    assert.equal(money.balance, money.ledger)
    assert.equal(Number(money.balance), 1 - (events.length + 1) * 0.001)
  }).timeout(20000)
})
