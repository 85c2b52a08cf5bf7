import { test } from '@japa/runner'
import { PlanRouters, openToPlan } from '#gateway/routing/plan_routers'
import type { ChannelInfo, PlanInfo } from '#gateway/types'

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

function plan(id: number): PlanInfo {
  return { id, name: `p${id}`, monthlyInputTokens: null, monthlyOutputTokens: null, allowedModels: ['*'], rpm: null, tpm: null, priceRatio: null, scaledPrices: new WeakMap() }
}

const ids = (routers: PlanRouters, p: PlanInfo | null, model: string) =>
  routers.for(p).route(model).map((c) => c.channel.id).sort()

test.group('PlanRouters (channel groups)', () => {
  test('no channel limited to plans: one router for every caller', ({ assert }) => {
    const routers = new PlanRouters([channel(1, {}), channel(2, { planIds: null }), channel(3, { planIds: [] })])
    assert.strictEqual(routers.for(plan(1)), routers.for(null))
    assert.strictEqual(routers.for(plan(1)), routers.for(plan(2)))
    assert.deepEqual(ids(routers, plan(7), 'm-x'), [1, 2, 3])
  })

  test('a limited channel: only its plans reach it; no plan reaches only channels open to all', ({ assert }) => {
    const routers = new PlanRouters([channel(1, {}), channel(2, { planIds: [5, 6] })])
    assert.deepEqual(ids(routers, plan(5), 'm-x'), [1, 2])
    assert.deepEqual(ids(routers, plan(6), 'm-x'), [1, 2])
    assert.deepEqual(ids(routers, plan(7), 'm-x'), [1])
    assert.deepEqual(ids(routers, null, 'm-x'), [1])
    // Plans that reach the same channels share one router (and its memoised routes).
    assert.strictEqual(routers.for(plan(5)), routers.for(plan(6)))
    assert.strictEqual(routers.for(plan(7)), routers.for(null))
    assert.notStrictEqual(routers.for(plan(5)), routers.for(plan(7)))
    // The same router object each time: one map lookup, nothing built per call.
    assert.strictEqual(routers.for(plan(5)), routers.for(plan(5)))
    assert.isTrue(openToPlan(channel(2, { planIds: [5] }), plan(5)))
    assert.isFalse(openToPlan(channel(2, { planIds: [5] }), null))
    assert.isTrue(openToPlan(channel(1, {}), null))
  })

  test('a name only closed channels list or map is model_not_found, not the prefix route of an open channel', ({ assert }) => {
    const routers = new PlanRouters([
      channel(1, { provider: 'openai', models: ['gpt-4o'] }),
      channel(2, { provider: 'openai', models: ['gpt-vip', 'vip-*'], modelMapping: { 'vip-alias': 'x' }, planIds: [5] }),
    ])
    for (const name of ['gpt-vip', 'vip-anything', 'vip-alias']) {
      assert.throws(() => routers.for(plan(9)).route(name), /was not found/)
      assert.deepEqual(ids(routers, plan(5), name), [2])
    }
    // A name no channel lists still goes by the prefix table to the open channel of its kind, as before.
    assert.deepEqual(ids(routers, plan(9), 'gpt-unlisted'), [1])
    assert.deepEqual(ids(routers, plan(5), 'gpt-unlisted'), [1, 2])
    // A disabled open channel is no_available_channel; a closed one is not mentioned.
    const disabled = new PlanRouters([channel(1, { models: ['shared'], enabled: false }), channel(2, { models: ['shared'], planIds: [5] })])
    assert.throws(() => disabled.for(plan(9)).route('shared'), /No available upstream channel/)
    assert.deepEqual(ids(disabled, plan(5), 'shared'), [2])
  })

  test('the models a plan lists are those of its open channels', ({ assert }) => {
    const routers = new PlanRouters([channel(1, { models: ['a'] }), channel(2, { models: ['b'], planIds: [5] })])
    assert.deepEqual(routers.for(plan(9)).listedModels().map((m) => m.id), ['a'])
    assert.deepEqual(routers.for(plan(5)).listedModels().map((m) => m.id).sort(), ['a', 'b'])
  })
})
