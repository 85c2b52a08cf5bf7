import { test } from '@japa/runner'
import { hashRedemptionCode, issueRedemptionCode, normaliseRedemptionCode } from '#services/redemption_code_token'

test.group('Redemption codes: issuing and reading what people type', () => {
  test('codes are GW + five groups of Crockford base32, unique, with a hint that cannot redeem', ({ assert }) => {
    const seen = new Set<string>()
    const counts = new Map<string, number>()
    for (let i = 0; i < 2000; i++) {
      const issued = issueRedemptionCode()
      assert.match(issued.code, /^GW(-[0-9A-HJKMNP-TV-Z]{4}){5}$/)
      seen.add(issued.code)
      const body = issued.code.slice(3).replace(/-/g, '')
      assert.equal(issued.hash, hashRedemptionCode(body))
      assert.equal(issued.hint, `${body.slice(0, 4)}…${body.slice(-4)}`)
      for (const c of body) counts.set(c, (counts.get(c) ?? 0) + 1)
    }
    assert.equal(seen.size, 2000)
    // 40,000 characters over 32 symbols: each ~1,250; a biased draw would show here.
    assert.equal(counts.size, 32)
    for (const n of counts.values()) assert.isAbove(n, 1000)
  })

  test('typed loosely, a code reads as its normal form', ({ assert }) => {
    const body = '7K3MQ9XD2F8HVN4TJ6RP'
    for (const typed of [
      'GW-7K3M-Q9XD-2F8H-VN4T-J6RP',
      'gw-7k3m-q9xd-2f8h-vn4t-j6rp',
      '7K3M Q9XD 2F8H VN4T J6RP',
      ' GW 7K3M-Q9XD-2F8H-VN4T-J6RP\n',
      '7K3MQ9XD2F8HVN4TJ6RP',
    ]) {
      assert.equal(normaliseRedemptionCode(typed), body, typed)
    }
    // O, I and L are not in the alphabet: read as 0, 1, 1.
    assert.equal(normaliseRedemptionCode('GW-O000-IIII-LLLL-0000-1111'), '00001111111100001111')
    // A body that itself starts with GW is kept whole.
    assert.equal(normaliseRedemptionCode('GW3MQ9XD2F8HVN4TJ6RP'), 'GW3MQ9XD2F8HVN4TJ6RP')
  })

  test('anything that cannot be a code is told apart without a lookup', ({ assert }) => {
    for (const typed of ['', 'hello', 'GW-7K3M-Q9XD-2F8H-VN4T', 'GW-7K3M-Q9XD-2F8H-VN4T-J6RPX', 'GW-7K3M-Q9XD-2F8H-VN4T-J6RU', 'sk-gw-abcdefghijklmnopqrstuv']) {
      assert.isNull(normaliseRedemptionCode(typed), typed)
    }
  })
})
