import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import { DateTime } from 'luxon'
import { dailyTotals, rollUpStaleDays, topBy } from '#services/usage_rollup'
import { UsageRetentionTimer } from '#services/usage_retention_timer'
import { gateway, meterEvent, resetDatabase, seedUser } from '#tests/helpers'

test.group('Daily rollups and usage rows that arrive late', (group) => {
  group.setup(() => resetDatabase())

  test('a finished day rolled up before a late batch (a replayed spill) is rolled up again: totals match the rows', async ({ assert }) => {
    const user = await seedUser()
    const meter = (await gateway()).meter
    const day = DateTime.utc().startOf('day').minus({ days: 2 })
    const at = (hours: number) => ({ ...meterEvent(user.userId, 'late-model'), createdAt: day.plus({ hours }).toJSDate() })

    meter.record(at(9))
    await meter.drain()
    const [before] = await dailyTotals(day, day)
    assert.equal(before.requests, 1)

    // Written after the day was rolled up, as a spill replayed after an outage is.
    meter.record(at(10))
    meter.record(at(11))
    await meter.drain()
    assert.deepEqual((await db.from('usage_daily_stale').select('day')).map((r) => DateTime.fromJSDate(r.day).toISODate()), [day.toISODate()])

    const [after] = await dailyTotals(day, day)
    assert.equal(after.requests, 3)
    assert.closeTo(after.cost, 0.003, 1e-9)
    const [top] = await topBy('model', day)
    assert.include(top, { key: 'late-model', requests: 3 })
    // Rolled up again, the mark is gone; today's rows mark nothing.
    meter.record(meterEvent(user.userId, 'late-model'))
    await meter.drain()
    assert.lengthOf(await db.from('usage_daily_stale').select('day'), 0)
  })

  test("days marked stale (a late row, or an upgrade's new dimension) are rolled up by the background timer, not in a reader's request", async ({ assert }) => {
    const user = await seedUser()
    const meter = (await gateway()).meter
    const days = [3, 4, 5].map((n) => DateTime.utc().startOf('day').minus({ days: n }))
    for (const day of days) meter.record({ ...meterEvent(user.userId, 'stale-model'), createdAt: day.plus({ hours: 9 }).toJSDate() })
    await meter.drain()
    await dailyTotals(days[2], days[0])
    // As migration 1001 left them: rolled up once, then marked stale again.
    await db.table('usage_daily_stale').multiInsert(days.map((day) => ({ day: day.toISODate() })))
    const log: string[] = []
    const timer = new UsageRetentionTimer({ days: () => 0, log: (m) => log.push(m), rollUpStale: (signal) => rollUpStaleDays(400, signal, 0) })
    await timer.tick()
    assert.lengthOf(await db.from('usage_daily_stale').select('day'), 0, 'nothing left for a reader to roll up')
    assert.include(log.join('\n'), 'usage rollups: 3 days marked stale rolled up again')
    const totals = await dailyTotals(days[2], days[0])
    assert.deepEqual(totals.map((t) => t.requests), [1, 1, 1])
    // A stop during a run waits for the day being rolled up, and starts no other.
    await db.table('usage_daily_stale').multiInsert(days.map((day) => ({ day: day.toISODate() })))
    const stopping = new UsageRetentionTimer({ days: () => 0, log: () => {}, rollUpStale: (signal) => rollUpStaleDays(400, signal, 50) })
    const run = stopping.tick()
    await new Promise((r) => setTimeout(r, 10))
    await stopping.stop()
    await run
    assert.isAtLeast((await db.from('usage_daily_stale').select('day')).length, 1, 'stopped before the last day')
  })
})
