import { test } from '@japa/runner'
import { formatWait } from '#services/format'

/** The login throttle's wait is said in the visitor's language (it was English in Vietnamese). */
test.group('formatWait', () => {
  test('seconds and minutes, in English and Vietnamese', ({ assert }) => {
    assert.equal(formatWait(0.2), '1 second')
    assert.equal(formatWait(45), '45 seconds')
    assert.equal(formatWait(61), '2 minutes')
    assert.equal(formatWait(45, 'vi'), '45 giây')
    assert.equal(formatWait(600, 'vi'), '10 phút')
  })
})
