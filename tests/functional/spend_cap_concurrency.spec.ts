import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { heldOnKey } from '#gateway/metering/key_reservations'
import { estimateCostPico } from '#gateway/metering/reservation'
import { fromPico, toPico } from '#gateway/metering/money'
import { gateway, post, resetDatabase, seedChannel, seedPrice, seedUser, startMock, usageRows } from '#tests/helpers'

/**
 * Issue 8, item 4: a key's spend cap was checked against what was already
 * spent only, so 50 concurrent calls on a $0.0001 cap were all served
 * ($0.0011 spent, 11x). Requests in flight now hold their estimate against
 * the cap, as they do against the balance.
 */
test.group('Issue 8: per-key spend cap under concurrency', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'mock', baseUrl: mock.url, models: ['*'] })
    await seedPrice('capped-*', '1', '1')
    return () => mock.stop()
  })

  test('$0.0001 cap, 50 concurrent priced calls: spent at most cap + one estimate, holds released', async ({ assert }) => {
    const user = await seedUser({ balance: '10', key: { spendLimit: '0.0001' } })
    const body = { model: 'capped-a', messages: [{ role: 'user', content: 'hi' }], max_tokens: 10, mock: { latency_ms: 50 } }
    const statuses = await Promise.all(
      Array.from({ length: 50 }, () =>
        post('/v1/chat/completions', body, { authorization: `Bearer ${user.key}` }).then(async (r) => {
          const answer: any = await r.json()
          if (r.status === 402) assert.equal(answer.error.code, 'spend_limit_exceeded')
          return r.status
        })
      )
    )
    const served = statuses.filter((s) => s === 200).length
    assert.equal(served + statuses.filter((s) => s === 402).length, 50)
    assert.isAtLeast(served, 1)

    const { catalog } = await gateway()
    const price = catalog.priceFor('capped-a')
    const estimate = estimateCostPico(price, Buffer.byteLength(JSON.stringify(body)), body)
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 50)
    const spent = rows.reduce((sum, r) => sum + toPico(r.cost), 0n)
    assert.isTrue(spent <= toPico('0.0001') + estimate, `spent ${fromPico(spent)}, cap 0.0001 + estimate ${fromPico(estimate)}`)
    const key = await db.from('api_keys').where('id', user.keyId).first()
    assert.equal(toPico(String(key.spent)), spent)
    assert.equal(heldOnKey(user.keyId), 0n)
  })

  test('holds survive a reload of the key (the cached record is replaced)', async ({ assert }) => {
    const user = await seedUser({ balance: '10', key: { spendLimit: '0.0001' } })
    const auth = { authorization: `Bearer ${user.key}` }
    const slow = post('/v1/chat/completions', { model: 'capped-b', messages: [{ role: 'user', content: 'hi' }], mock: { latency_ms: 300 } }, auth)
    await new Promise((resolve) => setTimeout(resolve, 100))
    await (await gateway()).catalog.reload()
    const second = await post('/v1/chat/completions', { model: 'capped-b', messages: [{ role: 'user', content: 'hi' }] }, auth)
    assert.equal(second.status, 402)
    assert.equal((await slow).status, 200)
    assert.equal(heldOnKey(user.keyId), 0n)
    assert.lengthOf(await usageRows(user.userId), 2)
  })
})
