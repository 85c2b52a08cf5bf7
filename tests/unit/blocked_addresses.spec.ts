import { test } from '@japa/runner'
import { addressCheckingLookup, BlockedAddressError, isBlockedAddress, publicOnlyLookup } from '#services/blocked_addresses'

/**
 * The addresses a user's webhook and a video download's redirect never
 * reach, in every form a URL or a DNS answer can write them.
 */

/** The host as a redirect's URL leaves it (WHATWG URL normalises every IP form), brackets off */
function hostOf(host: string): string {
  return new URL(`https://${host}/`).hostname.replace(/^\[(.*)\]$/, '$1')
}

test.group('blocked addresses', () => {
  test('loopback, private, link-local and metadata in every IPv4 and IPv6 spelling', ({ assert }) => {
    const blocked = [
      '127.0.0.1', '0x7f.1', '017700000001', '2130706433', '10.1.2.3', '169.254.169.254', '192.168.1.1', '100.64.0.1', '0.0.0.0',
      '[::1]', '[0:0:0:0:0:0:0:1]', '[::]', '[::127.0.0.1]', '[::ffff:127.0.0.1]', '[::ffff:7f00:1]', '[::ffff:a9fe:a9fe]',
      '[fe80::1]', '[fd00::1]', '[fc00::1]', '[ff02::1]', '[64:ff9b::7f00:1]', '[100::1]',
      // Missed before: an IPv4-translated loopback, 6to4 and local NAT64 forms of one, Teredo, site-local, documentation
      '[::ffff:0:7f00:1]', '[::ffff:0:127.0.0.1]', '[2002:7f00:1::]', '[2002:a9fe:a9fe::1]', '[64:ff9b:1::7f00:1]', '[2001::1]',
      '[fec0::1]', '[2001:db8::1]', '192.0.2.1', '198.51.100.7', '203.0.113.9',
    ]
    for (const host of blocked) assert.isTrue(isBlockedAddress(hostOf(host)), host)
    for (const host of ['8.8.8.8', '142.250.72.14', '[2607:f8b0:4005:80a::200e]', '[2a00:1450:4001:82a::200e]', '[2001:4860:4860::8888]', '[::ffff:8.8.8.8]']) {
      assert.isFalse(isBlockedAddress(hostOf(host)), host)
    }
    // No address at all is refused
    assert.isTrue(isBlockedAddress('example.com'))
  })

  test("a name's lookup is refused when any of its addresses is blocked; else the socket gets the address it resolved", async ({ assert }) => {
    const ask = (lookup: typeof publicOnlyLookup, host: string, options: any) =>
      new Promise<any>((resolve) => lookup(host, options, (error: any, address: any, family: any) => resolve({ error, address, family })))
    for (const options of [{}, { all: true }]) assert.instanceOf((await ask(publicOnlyLookup, 'localhost', options)).error, BlockedAddressError)
    // Not refusing (a webhook with USER_WEBHOOK_ALLOW_PRIVATE): the one address looked up is the one handed on
    const allowing = addressCheckingLookup(() => false, (message) => new Error(message))
    const one = await ask(allowing, 'localhost', { family: 4 })
    assert.deepEqual([one.error, one.address, one.family], [null, '127.0.0.1', 4])
    const all = await ask(allowing, 'localhost', { all: true, family: 4 })
    assert.deepEqual(all.address, [{ address: '127.0.0.1', family: 4 }])
  })
})
