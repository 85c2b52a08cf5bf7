import { test } from '@japa/runner'
import type { ChannelTestRow } from '#actions/test_all_channels'
import { FLASH_BUDGET, MESSAGE_CHARS, packTestAll, unpackTestAll } from '#services/test_all_flash'

/**
 * Test all's results in the session flash (a cookie, dropped whole by the
 * browser past 4 KB): always within FLASH_BUDGET, counts exact, failures
 * kept before passes, messages cut to share the room.
 */
function rows(count: number, failing: (i: number) => boolean, message = 'upstream answered HTTP 401: '.padEnd(400, 'x')): ChannelTestRow[] {
  return Array.from({ length: count }, (_, i) => ({
    channelId: i + 1,
    name: `channel-${i + 1}`,
    ok: !failing(i),
    model: i % 3 === 0 ? null : 'gpt-4o-mini',
    latencyMs: 100 + i,
    status: failing(i) ? 401 : 200,
    message: failing(i) ? message : 'gateway channel test ok',
    reEnabled: i === 1,
    skipped: false,
  }))
}

const bytes = (value: unknown) => Buffer.byteLength(JSON.stringify(value))

test.group('Test all results in the flash', () => {
  test('a few channels: every result, a failure message as the list shows it (160 characters)', ({ assert }) => {
    const packed = packTestAll(rows(5, (i) => i === 4))
    const shown = unpackTestAll(JSON.parse(JSON.stringify(packed)))!
    assert.include(shown, { tested: 5, passed: 4, failed: 1, reEnabled: 1, notKept: 0 })
    assert.deepEqual(shown.results.get(1), { ok: true, keyCheck: true, latencyMs: 100, status: 200, message: '', reEnabled: false, skipped: false })
    assert.isTrue(shown.results.get(2)!.reEnabled)
    assert.lengthOf(shown.results.get(5)!.message, MESSAGE_CHARS + 1, '160 characters and the ellipsis')
  })

  test('many failures: messages shortened to fit; hundreds of channels: passes dropped first, counts exact', ({ assert }) => {
    // Sixty channels failing alike (one host down) share one message, kept whole.
    const alike = unpackTestAll(packTestAll(rows(60, () => true, 'upstream answered HTTP 500: ünïcödé '.repeat(20))))!
    assert.equal(alike.results.size, 60)
    assert.isTrue([...alike.results.values()].every((r) => r.message.length === MESSAGE_CHARS + 1))
    // Sixty different messages: each cut to share the room, none dropped.
    const distinct = rows(60, () => true).map((r) => ({ ...r, message: `upstream answered HTTP 500 for channel ${r.channelId}: ${'ü'.repeat(300)}` }))
    const sixty = packTestAll(distinct)
    assert.isAtMost(bytes(sixty), FLASH_BUDGET)
    const shownSixty = unpackTestAll(sixty)!
    assert.equal(shownSixty.results.size, 60)
    assert.isTrue([...shownSixty.results.values()].every((r) => r.message.startsWith('upstream')))

    const many = packTestAll(rows(400, (i) => i % 10 === 0))
    assert.isAtMost(bytes(many), FLASH_BUDGET)
    const shown = unpackTestAll(many)!
    assert.include(shown, { tested: 400, passed: 360, failed: 40 })
    assert.isAbove(shown.notKept, 0)
    const kept = [...shown.results.values()]
    assert.lengthOf(kept.filter((r) => !r.ok), 40, 'every failure kept before any pass')
  })

  test('no flash, or one that is not ours: nothing shown', ({ assert }) => {
    assert.isNull(unpackTestAll(undefined))
    assert.isNull(unpackTestAll('Tested'))
    assert.isNull(unpackTestAll({ rows: 'x' }))
    assert.isNull(unpackTestAll({ counts: [1, 1, 0], rows: [] }))
  })
})
