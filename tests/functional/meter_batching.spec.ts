import { test } from '@japa/runner'
import app from '@adonisjs/core/services/app'
import db from '@adonisjs/lucid/services/db'
import { UsageMeter } from '#gateway/metering/usage_meter'
import { balanceAndLedger, meterEvent, resetDatabase, seedUser } from '#tests/helpers'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

test.group('Metering batches under a trickle of requests', (group) => {
  group.setup(async () => {
    await resetDatabase()
  })

  test('requests arriving while a batch commits wait for the flush timer: a few commits, not one per request', async ({ assert, cleanup }) => {
    const user = await seedUser({ balance: '1' })
    const logger = await app.container.make('logger')
    const meter = new UsageMeter({ connectionString: process.env.DATABASE_URL!, batchSize: 500, flushMs: 40, logger })
    cleanup(() => meter.close(2000))
    // 200 requests over ~250 ms, faster than a commit returns. Written as
    // soon as the previous commit returned, they made a commit every round
    // trip (dozens of batches of a few rows); now one per 40 ms window plus
    // the commit.
    for (let i = 0; i < 200; i++) {
      meter.record(meterEvent(user.userId, 'batch-model'))
      await sleep(1)
    }
    await meter.drain()
    const rows = await db.from('usage_records').where('user_id', user.userId).count('* as n').first()
    assert.equal(Number(rows.n), 200)
    assert.isAtMost(meter.batchesWritten, 12, `${meter.batchesWritten} commits for 200 requests`)
    assert.isAtLeast(meter.batchesWritten, 2)
    const money = await balanceAndLedger(user.userId)
    assert.equal(money.balance, money.ledger)
    assert.equal(Number(money.balance), 1 - 200 * 0.001)
  }).timeout(20000)

  test('a full batch is written at once, without waiting for the timer', async ({ assert, cleanup }) => {
    const user = await seedUser({ balance: '1' })
    const logger = await app.container.make('logger')
    const meter = new UsageMeter({ connectionString: process.env.DATABASE_URL!, batchSize: 10, flushMs: 60_000, logger })
    // A failed assertion must not leave the meter's timer and pool holding the runner open.
    cleanup(() => meter.close(2000))
    for (let i = 0; i < 25; i++) meter.record(meterEvent(user.userId, 'batch-model'))
    const started = Date.now()
    while (meter.batchesWritten < 2 && Date.now() - started < 5000) await sleep(10)
    assert.equal(meter.batchesWritten, 2, 'the two full batches went without the 60 s timer')
    assert.equal(meter.queued, 5, 'the part batch waits for the timer')
    await meter.drain()
    assert.equal(meter.batchesWritten, 3)
    const rows = await db.from('usage_records').where('user_id', user.userId).count('* as n').first()
    assert.equal(Number(rows.n), 25)
  }).timeout(20000)
})
