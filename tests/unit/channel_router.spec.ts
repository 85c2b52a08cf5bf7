import { test } from '@japa/runner'
import { ChannelRouter } from '#gateway/routing/channel_router'
import type { ChannelInfo } from '#gateway/types'

function channel(id: number, overrides: Partial<ChannelInfo>): ChannelInfo {
  return {
    id,
    name: `c${id}`,
    provider: 'custom',
    baseUrl: 'http://127.0.0.1:1/v1',
    apiKey: null,
    models: ['m-*'],
    modelMapping: {},
    extraHeaders: {},
    priority: 0,
    weight: 1,
    enabled: true,
    disabledReason: null,
    timeouts: { connect: 1000, firstByte: 1000, idle: 1000, total: 1000 },
    ...overrides,
  }
}

test.group('ChannelRouter', () => {
  test('weighted random within a priority follows the weights', ({ assert }) => {
    const router = new ChannelRouter([channel(1, { weight: 1 }), channel(2, { weight: 3 })])
    const firsts = { 1: 0, 2: 0 } as Record<number, number>
    for (let i = 0; i < 4000; i++) firsts[router.route('m-x')[0].channel.id]++
    const share = firsts[2] / 4000
    assert.isAbove(share, 0.7)
    assert.isBelow(share, 0.8)
  })

  test('every candidate is listed once, higher priority groups first', ({ assert }) => {
    const router = new ChannelRouter([
      channel(1, { priority: 0 }),
      channel(2, { priority: 9 }),
      channel(3, { priority: 0, weight: 0 }),
      channel(4, { priority: 9, enabled: false }),
    ])
    const ids = router.route('m-1').map((c) => c.channel.id)
    assert.equal(ids[0], 2)
    assert.sameMembers(ids, [1, 2, 3])
    assert.equal(ids[2], 3) // weight 0 goes last in its group
  })

  test('model mapping and listed models', ({ assert }) => {
    const router = new ChannelRouter([channel(1, { models: ['exact-model', 'glob-*'], modelMapping: { pub: 'up/v2' } })])
    assert.equal(router.route('pub')[0].upstreamModel, 'up/v2')
    assert.sameDeepMembers(router.listedModels(), [
      { id: 'exact-model', provider: 'custom' },
      { id: 'pub', provider: 'custom' },
    ])
  })
})
