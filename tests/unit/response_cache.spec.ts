import { test } from '@japa/runner'
import { ResponseCache, StreamRecorder, cacheKeyOf } from '#gateway/cache/response_cache'

const answer = (size: number) => ({ stream: false, contentType: 'application/json', bytes: Buffer.alloc(size, 120) })

test.group('ResponseCache', () => {
  test('least recently used entries leave first when the bytes run out', ({ assert }) => {
    const cache = new ResponseCache(3 * (100 + 256), 60)
    cache.set('a', answer(100), 60_000)
    cache.set('b', answer(100), 60_000)
    cache.set('c', answer(100), 60_000)
    assert.isDefined(cache.get('a')) // a is now the most recent
    cache.set('d', answer(100), 60_000)
    assert.isUndefined(cache.get('b'))
    assert.isDefined(cache.get('a'))
    assert.isDefined(cache.get('c'))
    assert.isDefined(cache.get('d'))
    assert.equal(cache.entries, 3)
    assert.equal(cache.bytes, 3 * 356)
    assert.equal(cache.evicted, 1)
  })

  test('expired entries are misses and give their bytes back; oversized answers are not kept', ({ assert }) => {
    const cache = new ResponseCache(8 * 1024, 60)
    cache.set('a', answer(100), 1000, 0)
    assert.isDefined(cache.get('a', 999))
    assert.isUndefined(cache.get('a', 1000))
    assert.equal(cache.bytes, 0)
    assert.isFalse(cache.set('big', answer(1025), 1000), 'over an eighth of the cache')
    assert.equal(cache.entries, 0)
  })

  test('replacing an entry counts its bytes once', ({ assert }) => {
    const cache = new ResponseCache(1 << 20, 60)
    cache.set('a', answer(100), 1000)
    cache.set('a', answer(200), 1000)
    assert.equal(cache.bytes, 200 + 256)
  })

  test('directive: absent, zero, valid, out of range', ({ assert }) => {
    const cache = new ResponseCache(1 << 20, 3600)
    assert.isNull(cache.directive({}, () => 'k'))
    assert.isNull(cache.directive({ 'x-gateway-cache-ttl': '0' }, () => 'k'))
    assert.deepEqual(cache.directive({ 'x-gateway-cache-ttl': ' 30 ' }, () => 'k'), { key: 'k', ttlMs: 30_000, refresh: false })
    assert.deepEqual(cache.directive({ 'x-gateway-cache-ttl': '30', 'x-gateway-cache-refresh': 'TRUE' }, () => 'k'), { key: 'k', ttlMs: 30_000, refresh: true })
    for (const bad of ['3601', '-1', '1.5', 'abc', '']) {
      assert.throws(() => cache.directive({ 'x-gateway-cache-ttl': bad }, () => 'k'), /x-gateway-cache-ttl/)
    }
  })

  test('the key separates users, formats, models, stream modes and bodies', ({ assert }) => {
    const body = Buffer.from('{"a":1}')
    const base = cacheKeyOf(1, 'openai_chat', 'm', false, false, body)
    assert.equal(cacheKeyOf(1, 'openai_chat', 'm', false, false, Buffer.from('{"a":1}')), base)
    for (const other of [
      cacheKeyOf(2, 'openai_chat', 'm', false, false, body),
      cacheKeyOf(1, 'anthropic_messages', 'm', false, false, body),
      cacheKeyOf(1, 'openai_chat', 'n', false, false, body),
      cacheKeyOf(1, 'openai_chat', 'm', true, false, body),
      cacheKeyOf(1, 'openai_chat', 'm', true, true, body),
      cacheKeyOf(1, 'openai_chat', 'm', false, false, Buffer.from('{"a":2}')),
    ]) {
      assert.notEqual(other, base)
    }
  })

  test('a stream recorder keeps what fits and gives up on a longer stream', ({ assert }) => {
    const small = new StreamRecorder(10)
    small.add('data: ')
    small.add(Buffer.from('x\n'))
    assert.equal(small.bytes()!.toString(), 'data: x\n')
    const big = new StreamRecorder(4)
    big.add('abc')
    big.add('de')
    assert.isNull(big.bytes())
  })
})
