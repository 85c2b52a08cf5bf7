import { test } from '@japa/runner'
import { periodBounds, rollSpendPeriod } from '#gateway/metering/spend_period'

const at = (iso: string) => Date.parse(iso)

test.group('Spend periods (UTC calendar)', () => {
  test('a day, a week from Monday, a month', ({ assert }) => {
    assert.deepEqual(periodBounds('day', at('2026-12-04T23:59:59.999Z')), { start: at('2026-12-04T00:00:00Z'), end: at('2026-12-05T00:00:00Z') })
    // 2026-12-04 is a Friday; the week began on Monday 2026-11-30.
    assert.deepEqual(periodBounds('week', at('2026-12-04T10:00:00Z')), { start: at('2026-11-30T00:00:00Z'), end: at('2026-12-07T00:00:00Z') })
    assert.deepEqual(periodBounds('week', at('2026-12-06T23:00:00Z')).start, at('2026-11-30T00:00:00Z'), 'Sunday is the last day')
    assert.deepEqual(periodBounds('week', at('2026-12-07T00:00:00Z')).start, at('2026-12-07T00:00:00Z'), 'Monday starts one')
    assert.deepEqual(periodBounds('month', at('2026-12-31T12:00:00Z')), { start: at('2026-12-01T00:00:00Z'), end: at('2027-01-01T00:00:00Z') })
    assert.deepEqual(periodBounds('month', at('2028-02-29T12:00:00Z')).end, at('2028-03-01T00:00:00Z'))
  })

  test('a key rolls into a new period at its end, not before; a key without a period never rolls', ({ assert }) => {
    const key = { spendPeriod: 'day' as const, spentPico: 5n, periodStartsAt: at('2026-12-04T00:00:00Z'), periodEndsAt: at('2026-12-05T00:00:00Z') }
    rollSpendPeriod(key, at('2026-12-04T23:59:59Z'))
    assert.equal(key.spentPico, 5n)
    rollSpendPeriod(key, at('2026-12-05T00:00:00Z'))
    assert.equal(key.spentPico, 0n)
    assert.equal(key.periodStartsAt, at('2026-12-05T00:00:00Z'))
    assert.equal(key.periodEndsAt, at('2026-12-06T00:00:00Z'))
    const lifetime = { spendPeriod: null, spentPico: 9n, periodStartsAt: -Infinity, periodEndsAt: Infinity }
    rollSpendPeriod(lifetime, at('2030-01-01T00:00:00Z'))
    assert.equal(lifetime.spentPico, 9n)
  })
})
