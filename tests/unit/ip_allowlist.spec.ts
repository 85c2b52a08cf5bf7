import { test } from '@japa/runner'
import {
  MAX_ALLOWED_IPS,
  compileIpAllowlist,
  ipAllowed,
  normaliseIpEntry,
  parseIpList,
} from '#gateway/auth/ip_allowlist'

test.group('Key IP allowlists: parsing and normalising', () => {
  test('addresses and ranges are kept in one canonical form', ({ assert }) => {
    assert.equal(normaliseIpEntry(' 203.0.113.7 '), '203.0.113.7')
    assert.equal(normaliseIpEntry('10.0.0.0/8'), '10.0.0.0/8')
    assert.equal(normaliseIpEntry('0.0.0.0/0'), '0.0.0.0/0')
    assert.equal(normaliseIpEntry('2001:0DB8:0000:0000::0001'), '2001:db8::1')
    assert.equal(normaliseIpEntry('2001:db8::/32'), '2001:db8::/32')
    assert.equal(normaliseIpEntry('::1'), '::1')
    assert.equal(normaliseIpEntry('::/0'), '::/0')
  })

  test('an IPv4-mapped IPv6 entry is stored as the IPv4 it stands for', ({ assert }) => {
    assert.equal(normaliseIpEntry('::ffff:127.0.0.1'), '127.0.0.1')
    assert.equal(normaliseIpEntry('::FFFF:10.1.2.3'), '10.1.2.3')
    assert.equal(normaliseIpEntry('::ffff:10.0.0.0/104'), '10.0.0.0/8')
    // A range wider than the mapped block is an IPv6 range.
    assert.equal(normaliseIpEntry('::ffff:0:0/80'), '::ffff:0:0/80')
  })

  test('anything else is refused: not an address, prefix out of range, zone index, leading zeros', ({ assert }) => {
    for (const bad of ['', 'localhost', '10.0.0', '10.0.0.256', '010.0.0.1', '10.0.0.0/33', '10.0.0.0/-1', '10.0.0.0/', '10.0.0.0/8/8', '::1/129', 'fe80::1%eth0', '1.2.3.4 5.6.7.8', '2001:db8::g', '10.0.0.0/8a']) {
      assert.isNull(normaliseIpEntry(bad), bad)
    }
  })

  test('a list from text or an array: separators, duplicates, empties, the first bad entry, the size cap', ({ assert }) => {
    assert.deepEqual(parseIpList('10.0.0.1, 192.168.0.0/16\n::1  10.0.0.1,,'), { entries: ['10.0.0.1', '192.168.0.0/16', '::1'] })
    assert.deepEqual(parseIpList(['::ffff:10.0.0.1', '10.0.0.1', ' ']), { entries: ['10.0.0.1'] })
    assert.deepEqual(parseIpList(null), { entries: [] })
    assert.deepEqual(parseIpList(''), { entries: [] })
    assert.deepEqual(parseIpList('10.0.0.1, 10.0.0.300, nope'), { problem: { kind: 'invalid', entry: '10.0.0.300' } })
    assert.deepEqual(parseIpList([7 as unknown as string]), { problem: { kind: 'invalid', entry: '7' } })
    const fits = Array.from({ length: MAX_ALLOWED_IPS }, (_, i) => `10.0.0.${i}`)
    assert.lengthOf((parseIpList(fits) as { entries: string[] }).entries, MAX_ALLOWED_IPS)
    assert.deepEqual(parseIpList([...fits, '10.0.1.0']), { problem: { kind: 'too_many', max: MAX_ALLOWED_IPS } })
    assert.deepEqual(parseIpList([...fits, '10.0.0.0']), { entries: fits }, 'a duplicate does not count twice')
  })
})

test.group('Key IP allowlists: BlockList matching', () => {
  test('no list, or an empty one, is no restriction (null: the hot path compares once)', ({ assert }) => {
    assert.isNull(compileIpAllowlist(null))
    assert.isNull(compileIpAllowlist([]))
  })

  test('IPv4 addresses and subnets', ({ assert }) => {
    const list = compileIpAllowlist(['127.0.0.1', '10.0.0.0/8', '192.168.1.0/24'])!
    assert.isTrue(ipAllowed(list, '127.0.0.1'))
    assert.isFalse(ipAllowed(list, '127.0.0.2'))
    assert.isTrue(ipAllowed(list, '10.255.255.255'))
    assert.isFalse(ipAllowed(list, '11.0.0.0'))
    assert.isTrue(ipAllowed(list, '192.168.1.200'))
    assert.isFalse(ipAllowed(list, '192.168.2.1'))
    assert.isFalse(ipAllowed(list, undefined), 'no address (socket gone): refused')
    assert.isFalse(ipAllowed(list, 'not-an-ip'))
  })

  test('IPv6 addresses and subnets', ({ assert }) => {
    const list = compileIpAllowlist(['::1', '2001:db8::/32', 'fd00:1:2:3::/64'])!
    assert.isTrue(ipAllowed(list, '::1'))
    assert.isTrue(ipAllowed(list, '0:0:0:0:0:0:0:1'))
    assert.isTrue(ipAllowed(list, '2001:db8:ffff::42'))
    assert.isFalse(ipAllowed(list, '2001:db9::1'))
    assert.isTrue(ipAllowed(list, 'fd00:1:2:3:aaaa::1'))
    assert.isFalse(ipAllowed(list, 'fd00:1:2:4::1'))
    assert.isFalse(ipAllowed(list, '127.0.0.1'), 'an IPv6 loopback entry does not admit IPv4 loopback')
  })

  test('an IPv4 client seen as IPv4-mapped IPv6 (a server on ::) matches the IPv4 entries', ({ assert }) => {
    const list = compileIpAllowlist(['127.0.0.1', '10.0.0.0/8'])!
    assert.isTrue(ipAllowed(list, '::ffff:127.0.0.1'))
    assert.isTrue(ipAllowed(list, '::ffff:10.20.30.40'))
    assert.isFalse(ipAllowed(list, '::ffff:11.0.0.1'))
    const mappedEntry = compileIpAllowlist(['::ffff:192.0.2.5'])!
    assert.isTrue(ipAllowed(mappedEntry, '192.0.2.5'))
    assert.isTrue(ipAllowed(mappedEntry, '::ffff:192.0.2.5'))
  })

  test('a stored entry that does not parse matches nothing: a broken list refuses, never opens the key', ({ assert }) => {
    const list = compileIpAllowlist(['garbage', 42])!
    assert.isNotNull(list)
    assert.isFalse(ipAllowed(list, '127.0.0.1'))
    assert.isFalse(ipAllowed(list, '::1'))
  })
})
