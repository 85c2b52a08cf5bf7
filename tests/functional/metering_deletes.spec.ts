import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import { openai, resetDatabase, seedChannel, seedPrice, seedUser, startMock, usageRows } from '#tests/helpers'

/**
 * The metering tables carry no foreign keys (they cost a third of the
 * metering statement); statement-level triggers keep what the keys did on
 * delete. These pin that behaviour.
 */
test.group('Metering rows when what they point to is deleted', (group) => {
  group.setup(async () => {
    await resetDatabase()
    const mock = await startMock()
    await seedPrice('del-*', '1', '2')
    return () => mock.stop()
  })

  async function meteredUser(mockUrl: string) {
    const channel = await seedChannel({ name: `del-${Date.now()}`, baseUrl: mockUrl, models: ['del-*'] })
    const user = await seedUser({ balance: '5' })
    await openai(user.key).chat.completions.create({ model: 'del-a', messages: [{ role: 'user', content: 'hi' }] })
    const [row] = await usageRows(user.userId)
    return { channel, user, row }
  }

  test('deleting a key or a channel keeps the usage row and clears its reference', async ({ assert }) => {
    const mock = await startMock()
    try {
      const { channel, user, row } = await meteredUser(mock.url)
      assert.equal(row.api_key_id, user.keyId)
      assert.equal(row.channel_id, channel.id)
      await db.from('api_keys').where('id', user.keyId).delete()
      await db.from('channels').where('id', channel.id).delete()
      const [after] = await db.from('usage_records').where('id', row.id)
      assert.isNull(after.api_key_id)
      assert.isNull(after.channel_id)
    } finally {
      await mock.stop()
    }
  })

  test('deleting a user deletes its ledger and usage rows; deleting a usage row clears the charge reference', async ({ assert }) => {
    const mock = await startMock()
    try {
      const first = await meteredUser(mock.url)
      const [charge] = await db.from('balance_ledger').where('usage_record_id', first.row.id)
      assert.exists(charge)
      await db.from('usage_records').where('id', first.row.id).delete()
      const [kept] = await db.from('balance_ledger').where('id', charge.id)
      assert.isNull(kept.usage_record_id)

      const second = await meteredUser(mock.url)
      await db.from('users').where('id', second.user.userId).delete()
      assert.lengthOf(await db.from('usage_records').where('user_id', second.user.userId), 0)
      assert.lengthOf(await db.from('balance_ledger').where('user_id', second.user.userId), 0)
    } finally {
      await mock.stop()
    }
  })
})
