import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import { DateTime } from 'luxon'
import { dailyTotals, topBy } from '#services/usage_rollup'
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
})
