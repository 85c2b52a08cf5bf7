import { test } from '@japa/runner'
import { ChannelHealth, FORBIDDEN_WINDOW_MS } from '#gateway/routing/channel_health'

const options = { failureThreshold: 3, baseCooldownMs: 30_000, maxCooldownMs: 300_000 }

test.group('ChannelHealth: per-model cool-downs', () => {
  test('a 429 cools one (channel, model) for its Retry-After; the channel and its other models stay available', ({ assert }) => {
    const health = new ChannelHealth(options)
    const now = 1_000_000
    health.rateLimited(1, 'gpt-a', 'HTTP 429', 2000, now)
    assert.isFalse(health.modelAvailable(1, 'gpt-a', now + 1999))
    assert.isTrue(health.modelAvailable(1, 'gpt-a', now + 2000))
    assert.isTrue(health.modelAvailable(1, 'gpt-b', now))
    assert.isTrue(health.modelAvailable(2, 'gpt-a', now))
    assert.isTrue(health.isAvailable(1, now))
    assert.equal(health.retryAt(1, 'gpt-a', now), now + 2000)
    assert.deepEqual(health.modelCooldowns(1, now).map((c) => [c.model, c.kind]), [['gpt-a', 'rate_limited']])
  })

  test('a 429 without Retry-After: 1 s, doubling while the model keeps answering 429; a success ends it', ({ assert }) => {
    const health = new ChannelHealth(options)
    const now = 1_000_000
    health.rateLimited(1, 'm', 'HTTP 429', undefined, now)
    assert.equal(health.retryAt(1, 'm', now), now + 1000)
    health.rateLimited(1, 'm', 'HTTP 429', undefined, now)
    assert.equal(health.retryAt(1, 'm', now), now + 2000)
    health.success(1, 'm')
    assert.isNull(health.retryAt(1, 'm', now))
    assert.lengthOf(health.modelCooldowns(1, now), 0)
  })

  test('retryAt is the later of the circuit and the model cool-down', ({ assert }) => {
    const health = new ChannelHealth({ ...options, failureThreshold: 1 })
    const now = Date.now()
    health.failure(1, 'ECONNREFUSED', undefined, now)
    health.rateLimited(1, 'm', 'HTTP 429', 5000, now)
    assert.equal(health.retryAt(1, 'm', now), now + 30_000)
    assert.equal(health.retryAt(1, 'other', now), now + 30_000)
  })
})

test.group('ChannelHealth: 403 policy', () => {
  test('one model refused: cool-down; a second model refused within the window: disable', ({ assert }) => {
    const health = new ChannelHealth(options)
    const now = 1_000_000
    assert.equal(health.forbidden(1, 'a', 'HTTP 403', now), 'cooldown')
    assert.equal(health.retryAt(1, 'a', now), now + 30_000)
    // The same model again: still one model, a longer pause.
    assert.equal(health.forbidden(1, 'a', 'HTTP 403', now + 1), 'cooldown')
    assert.equal(health.retryAt(1, 'a', now + 1), now + 1 + 60_000)
    assert.equal(health.forbidden(1, 'b', 'HTTP 403', now + 2), 'disable')
  })

  test('403s on two models far apart, or on two channels, are not evidence of a bad key', ({ assert }) => {
    const health = new ChannelHealth(options)
    const now = 1_000_000
    assert.equal(health.forbidden(1, 'a', 'HTTP 403', now), 'cooldown')
    assert.equal(health.forbidden(1, 'b', 'HTTP 403', now + FORBIDDEN_WINDOW_MS + 1), 'cooldown')
    assert.equal(health.forbidden(2, 'c', 'HTTP 403', now), 'cooldown')
  })

  test('a success on the model forgets its 403', ({ assert }) => {
    const health = new ChannelHealth(options)
    const now = Date.now()
    health.forbidden(1, 'a', 'HTTP 403', now)
    health.success(1, 'a')
    assert.equal(health.forbidden(1, 'b', 'HTTP 403', now), 'cooldown')
  })
})

/** MAX_MODEL_COOLDOWNS in channel_health.ts */
const CAP = 256

test.group('ChannelHealth: cool-downs stay bounded', () => {
  test('thousands of distinct models rate-limited for minutes (hostile names, an account-wide 429): the kept cool-downs are capped', ({ assert }) => {
    const health = new ChannelHealth(options)
    const now = Date.now()
    for (let i = 0; i < 5000; i++) health.rateLimited(1, `hostile-${i}`, 'HTTP 429', 600_000, now + i)
    const kept = health.modelCooldowns(1, now).length
    assert.isAtMost(kept, CAP)
    // The latest ones are kept: a model that keeps answering 429 stays cooled.
    assert.isFalse(health.modelAvailable(1, 'hostile-4999', now + 5000))
    assert.isTrue(health.modelAvailable(1, 'hostile-0', now + 5000))
  })

  test('a model cooled again moves to the newest end: the cap drops the models not heard of for longest', ({ assert }) => {
    const health = new ChannelHealth(options)
    const now = Date.now()
    health.rateLimited(1, 'busy', 'HTTP 429', 600_000, now)
    for (let i = 0; i < 3 * CAP; i++) {
      health.rateLimited(1, `other-${i}`, 'HTTP 429', 600_000, now)
      if (i % 50 === 0) health.rateLimited(1, 'busy', 'HTTP 429', 600_000, now)
    }
    assert.isFalse(health.modelAvailable(1, 'busy', now + 1))
  })
})
