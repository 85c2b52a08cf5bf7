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

test.group('ChannelRouter: what it remembers', () => {
  test('a flood of unknown model names keeps the valid routes and no error objects', ({ assert }) => {
    const router = new ChannelRouter([channel(1, {}), channel(2, { models: ['off-model'], enabled: false })])
    const served = router.route('m-x')[0]
    const long = 'z'.repeat(200)
    for (let i = 0; i < 12_000; i++) {
      assert.throws(() => router.route(`${long}-${i}`))
    }
    // The same candidate object: the route was remembered through the flood, not rebuilt.
    assert.strictEqual(router.route('m-x')[0], served)
    const { plans, refusals } = router.memoised
    assert.equal(plans, 1)
    assert.isAtMost(refusals, 1_000, 'refused names are remembered within their own bound')
  })

  test('a refused model gets the same error as before, a new one each time', ({ assert }) => {
    const router = new ChannelRouter([channel(1, {}), channel(2, { models: ['off-model'], enabled: false })])
    const errors: any[] = []
    for (let i = 0; i < 2; i++) {
      for (const model of ['nothing-serves-this', 'off-model']) {
        try {
          router.route(model)
        } catch (error) {
          errors.push(error)
        }
      }
    }
    assert.lengthOf(errors, 4)
    const [notFound, unavailable, notFoundAgain] = errors
    assert.deepEqual(
      [notFound.status, notFound.code, notFound.message],
      [404, 'model_not_found', "Model 'nothing-serves-this' was not found: no channel serves it"]
    )
    assert.deepEqual(
      [unavailable.status, unavailable.code, unavailable.message],
      [503, 'no_available_channel', "No available upstream channel for model 'off-model'"]
    )
    assert.notStrictEqual(notFound, notFoundAgain, 'an error a caller may add headers to is not shared')
    assert.deepEqual([notFoundAgain.status, notFoundAgain.code, notFoundAgain.message], [notFound.status, notFound.code, notFound.message])
  })
})
