import { test } from '@japa/runner'
import { PendingTotals } from '#gateway/metering/pending_totals'
import { periodBounds } from '#gateway/metering/spend_period'
import type { MeterEvent } from '#gateway/metering/meter_event'

/**
 * app/gateway/metering/pending_totals.ts: what the meter holds uncommitted,
 * per user and per key, which a reloaded user or key gets added back.
 */

const at = (iso: string) => Date.parse(iso)
const PICO = 1_000_000_000n

let sequence = 0
function event(userId: number, apiKeyId: number | null, createdAt: string, costPico = PICO): MeterEvent {
  return {
    requestId: `request-${++sequence}`,
    userId,
    apiKeyId,
    channelId: null,
    provider: 'custom',
    model: 'm',
    requestedModel: null,
    servedModel: 'm',
    endpoint: 'chat_completions',
    stream: false,
    status: 200,
    errorCode: null,
    usage: { promptTokens: 10, completionTokens: 5, totalTokens: 15, cachedTokens: 0, reasoningTokens: 0, estimated: false },
    costPico,
    latencyMs: 1,
    ttftMs: null,
    createdAt: new Date(createdAt),
    attemptCount: 1,
    attempts: null,
  }
}

test.group('Pending metering totals', () => {
  test('a key counts, for its period, only the pending calls begun in it: exact across midnight, a Monday, a month', ({ assert }) => {
    const pending = new PendingTotals()
    // 2026-12-07 is a Monday, in December; the calls before it are of the last week, or of November.
    pending.add(event(1, 7, '2026-11-30T12:00:00Z', 4n * PICO))
    // A spill replayed late: a call of the year before.
    pending.add(event(1, 7, '2025-12-07T10:00:00Z', 8n * PICO))
    pending.add(event(1, 7, '2026-12-06T23:59:59.999Z', 2n * PICO))
    pending.add(event(1, 7, '2026-12-07T00:00:00Z'))
    // Out of order (a long stream begun before midnight, metered after today's calls).
    pending.add(event(1, 7, '2026-12-07T10:00:00Z'))
    pending.add(event(1, 7, '2026-12-06T23:00:00Z'))

    const now = at('2026-12-07T10:00:01Z')
    assert.equal(pending.keyCost(7, periodBounds('day', now).start), 2n * PICO, "the day: Monday's calls")
    assert.equal(pending.keyCost(7, periodBounds('week', now).start), 2n * PICO, 'the week began on Monday')
    assert.equal(pending.keyCost(7, periodBounds('month', now).start), 5n * PICO, "the month: Sunday's too, not November's")
    assert.equal(pending.keyCost(7, -Infinity), 17n * PICO, 'a lifetime cap: everything')
    assert.equal(pending.keyCost(8, -Infinity), 0n, 'another key holds nothing')
  })

  test('settling each event leaves nothing; zero-cost and keyless events touch no key', ({ assert }) => {
    const pending = new PendingTotals()
    const events = [
      event(1, 7, '2026-12-06T23:59:59Z'),
      event(1, 7, '2026-12-07T00:00:01Z'),
      event(1, 7, '2026-12-07T00:00:02Z', 0n),
      event(1, null, '2026-12-07T00:00:03Z'),
      event(2, 9, '2026-12-07T00:00:04Z', 3n * PICO),
    ]
    for (const e of events) pending.add(e)
    assert.equal(pending.user(1).costPico, 3n * PICO)
    assert.equal(pending.user(1).input, 40)
    assert.equal(pending.keyCost(7, -Infinity), 2n * PICO)
    assert.equal(pending.keyCost(9, -Infinity), 3n * PICO)

    // Yesterday's call commits first: today's stays, the day node goes.
    pending.settle(events[0])
    assert.equal(pending.keyCost(7, -Infinity), PICO)
    assert.equal(pending.keyCost(7, at('2026-12-07T00:00:00Z')), PICO)
    for (const e of events.slice(1)) pending.settle(e)
    assert.equal(pending.users.size, 0)
    assert.equal(pending.keys.size, 0)
    assert.equal(pending.user(1).costPico, 0n)
    assert.equal(pending.keyCost(7, -Infinity), 0n)
  })

  test('a spill tally is added back and subtracted whole, per user and per key and day', ({ assert }) => {
    const pending = new PendingTotals()
    const spilled = new PendingTotals()
    const queued = [event(1, 7, '2026-12-07T09:00:00Z'), event(2, 8, '2026-12-07T09:00:00Z')]
    const toDisk = [event(1, 7, '2026-12-06T22:00:00Z'), event(1, 7, '2026-12-07T08:00:00Z'), event(3, 9, '2026-12-07T08:00:00Z')]
    for (const e of [...queued, ...toDisk]) pending.add(e)
    for (const e of toDisk) spilled.add(e)

    // A replay that could not write hands its tally back to a fresh one.
    const handedBack = new PendingTotals()
    handedBack.addAll(spilled)
    assert.equal(handedBack.keyCost(7, -Infinity), 2n * PICO)
    assert.equal(handedBack.keyCost(7, at('2026-12-07T00:00:00Z')), PICO)
    assert.equal(handedBack.user(1).costPico, 2n * PICO)

    // The replay committed: only what is still queued stays pending.
    pending.subtractAll(handedBack)
    assert.equal(pending.keyCost(7, -Infinity), PICO)
    assert.equal(pending.keyCost(8, -Infinity), PICO)
    assert.equal(pending.keyCost(9, -Infinity), 0n)
    assert.isFalse(pending.keys.has(9))
    assert.isFalse(pending.users.has(3))
    assert.equal(pending.user(1).costPico, PICO)
    assert.equal(pending.user(1).output, 5)
    for (const e of queued) pending.settle(e)
    assert.equal(pending.keys.size, 0)
    assert.equal(pending.users.size, 0)
  })
})
