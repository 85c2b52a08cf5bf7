import { test } from '@japa/runner'
import ace from '@adonisjs/core/services/ace'
import db from '@adonisjs/lucid/services/db'
import ApiKey from '#models/api_key'
import KeyUpdate from '#commands/key_update'
import { createUser } from '#actions/create_user'
import { revokeApiKey } from '#actions/revoke_api_key'
import { hashApiKey } from '#gateway/auth/api_key_token'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { gateway, post, resetDatabase, seedChannel, seedPrice, seedUser, startMock } from '#tests/helpers'
import { PageClient, htmlText } from '#tests/page_client'
import { PanelClient, textOf } from '#tests/panel_client'

const hello = [{ role: 'user', content: 'hi' }]

/** $0.001 a call to edit-a (the mock answers 12 in, 5 out). */
async function call(key: string, model = 'edit-a') {
  const answer = await post('/v1/chat/completions', { model, messages: hello }, { authorization: `Bearer ${key}` })
  const body: any = await answer.json()
  return { status: answer.status, code: body.error?.code as string | undefined }
}

/** The running gateway hears of an edit through NOTIFY: wait for the answer to change (no cache refresh by hand). */
async function eventually(check: () => Promise<boolean>) {
  for (let i = 0; i < 40; i++) {
    if (await check()) return true
    await new Promise((r) => setTimeout(r, 50))
  }
  return false
}

async function admin() {
  const { user } = await createUser({ email: `edit-admin-${Date.now()}-${Math.random()}@test.local`, password: 'password123', role: 'admin' })
  const panel = new PanelClient()
  await panel.login(user.email, 'password123')
  return panel
}

test.group('API keys: editing a key', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'mock', baseUrl: mock.url, models: ['edit-a', 'edit-b'] })
    await seedPrice('edit-*', '50', '80')
    return () => mock.stop()
  })

  test('an admin narrows models, sets limits and a cap; the gateway applies it to the next request', async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    assert.equal((await call(user.key, 'edit-b')).status, 200)
    const panel = await admin()
    await panel.get(`/admin/keys/${user.keyId}/edit`)
    const saved = await panel.post(`/admin/keys/${user.keyId}`, { name: 'renamed', models: 'edit-a', rpm: '100', tpm: '', spendLimit: '2.5', spendPeriod: 'week', expiresOn: '' })
    assert.equal(saved.status, 302)
    assert.equal(saved.location, `/admin/keys/${user.keyId}`)
    const key = await ApiKey.findOrFail(user.keyId)
    assert.deepEqual([key.name, key.allowedModels, key.rpm, key.tpm, Number(key.spendLimit), key.spendPeriod], ['renamed', ['edit-a'], 100, null, 2.5, 'week'])
    assert.isTrue(await eventually(async () => (await call(user.key, 'edit-b')).code === 'model_not_allowed'))
    assert.equal((await call(user.key, 'edit-a')).status, 200)

    const audit = await db.from('audit_log').where('action', 'key.update').where('subject_id', user.keyId).first()
    assert.include(audit.summary, 'name: default → renamed')
    assert.include(audit.summary, 'models: — → edit-a')
    assert.include(audit.summary, 'spendPeriod: — → week')
    const page = textOf((await panel.get(`/admin/keys/${user.keyId}`)).html)
    assert.include(page, 'of a $2.50 cap this week (UTC)')
  })

  test('a cap that starts to reset counts what the key already spent in this period', async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    await call(user.key)
    await call(user.key)
    const panel = await admin()
    await panel.get(`/admin/keys/${user.keyId}/edit`)
    await panel.post(`/admin/keys/${user.keyId}`, { name: 'k', spendLimit: '0.0025', spendPeriod: 'month' })
    const row = await db.from('api_keys').where('id', user.keyId).first()
    assert.equal(Number(row.period_spent), 0.002)
    // The cached key is dropped by the edit's NOTIFY; the next call reads the row.
    const catalog = (await gateway()).catalog
    assert.isTrue(await eventually(async () => catalog.cachedKey(hashApiKey(user.key))?.spendLimitPico !== null))
    const statuses = [(await call(user.key)).status, (await call(user.key)).status]
    assert.deepEqual(statuses, [200, 402], 'one more call fits under the cap, then it is spent')
  })

  test('the last day it works: yesterday stops the key, none starts it again, an unchanged day keeps the expiry', async ({ assert }) => {
    const user = await seedUser({ balance: '10', key: { } })
    const panel = await admin()
    const yesterday = new Date(Date.now() - 86_400_000).toISOString().slice(0, 10)
    await panel.get(`/admin/keys/${user.keyId}/edit`)
    await panel.post(`/admin/keys/${user.keyId}`, { name: 'k', expiresOn: yesterday })
    assert.isTrue(await eventually(async () => (await call(user.key)).status === 401))
    await panel.get(`/admin/keys/${user.keyId}/edit`)
    await panel.post(`/admin/keys/${user.keyId}`, { name: 'k', expiresOn: '' })
    assert.isTrue(await eventually(async () => (await call(user.key)).status === 200))

    await db.from('api_keys').where('id', user.keyId).update({ expires_at: new Date('2027-03-10T14:30:00Z') })
    const form = await panel.get(`/admin/keys/${user.keyId}/edit`)
    assert.include(form.html, 'value="2027-03-10"')
    await panel.post(`/admin/keys/${user.keyId}`, { name: 'k2', expiresOn: '2027-03-10' })
    assert.equal((await ApiKey.findOrFail(user.keyId)).expiresAt!.toUTC().toISO(), '2027-03-10T14:30:00.000Z')
    await panel.get(`/admin/keys/${user.keyId}/edit`)
    await panel.post(`/admin/keys/${user.keyId}`, { name: 'k2', expiresOn: '2027-03-12' })
    assert.equal((await ApiKey.findOrFail(user.keyId)).expiresAt!.toUTC().toISO(), '2027-03-13T00:00:00.000Z')
  })

  test('bad input comes back beside the fields; a revoked key cannot be edited', async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    const panel = await admin()
    await panel.get(`/admin/keys/${user.keyId}/edit`)
    const refused = await panel.post(`/admin/keys/${user.keyId}`, { name: '', rpm: '0', spendLimit: 'lots', expiresOn: 'soon' })
    const text = textOf((await panel.follow(refused)).html)
    assert.include(text, 'Name is required')
    assert.include(text, 'Requests per minute must be at least 1')
    assert.include(text, 'Spend cap must be an amount in USD')
    assert.include(text, 'Last day it works must be a date such as 2027-01-31')
    await panel.get(`/admin/keys/${user.keyId}/edit`)
    const periodOnly = await panel.post(`/admin/keys/${user.keyId}`, { name: 'x', spendPeriod: 'day' })
    assert.include(textOf((await panel.follow(periodOnly)).html), 'A spend cap that resets needs a spend cap')
    assert.equal((await ApiKey.findOrFail(user.keyId)).name, 'default')

    await revokeApiKey(String(user.keyId))
    assert.equal((await panel.get(`/admin/keys/${user.keyId}/edit`)).status, 404)
    await panel.get('/admin/keys')
    const late = await panel.post(`/admin/keys/${user.keyId}`, { name: 'zombie' })
    assert.include(textOf((await panel.follow(late)).html), 'is revoked: issue a new key instead')
    assert.equal((await ApiKey.findOrFail(user.keyId)).name, 'default')
  })

  test('a user edits their own key in the portal, inside their plan; never another user\'s', async ({ assert }) => {
    const alice = await seedUser({ balance: '10', plan: { name: 'edit-plan', models: ['edit-*'] } })
    const bob = await seedUser({ balance: '10' })
    const client = new PageClient()
    await client.login(alice.email)
    const keys = await client.get('/dashboard/keys')
    assert.include(keys.body, `/dashboard/keys/${alice.keyId}/edit`)
    await client.get(`/dashboard/keys/${alice.keyId}/edit`)
    const saved = await client.post(`/dashboard/keys/${alice.keyId}`, { name: 'laptop', models: 'edit-a', spend_limit: '4', spend_period: 'day', expires_on: '' })
    assert.equal(saved.location, '/dashboard/keys')
    const list = htmlText((await client.get('/dashboard/keys')).body)
    assert.include(list, 'The key laptop was saved.')
    assert.include(list, '$4.00 a day')
    const key = await ApiKey.findOrFail(alice.keyId)
    assert.deepEqual([key.name, key.allowedModels, key.spendPeriod], ['laptop', ['edit-a'], 'day'])
    const audit = await db.from('audit_log').where('action', 'key.update').where('subject_id', alice.keyId).first()
    assert.equal(audit.source, 'portal')

    await client.get(`/dashboard/keys/${alice.keyId}/edit`)
    await client.post(`/dashboard/keys/${alice.keyId}`, { name: 'laptop', models: 'gpt-4o' })
    assert.include(htmlText((await client.get(`/dashboard/keys/${alice.keyId}/edit`)).body), 'One of these models is not allowed by your plan.')
    await client.post(`/dashboard/keys/${alice.keyId}`, { name: 'laptop', expires_on: '2027-02-30' })
    assert.include(htmlText((await client.get(`/dashboard/keys/${alice.keyId}/edit`)).body), 'This is not a date of the calendar.')

    assert.equal((await client.get(`/dashboard/keys/${bob.keyId}/edit`)).status, 404)
    await client.get('/dashboard/keys')
    const foreign = await client.post(`/dashboard/keys/${bob.keyId}`, { name: 'stolen' })
    assert.equal(foreign.status, 404)
    assert.equal((await ApiKey.findOrFail(bob.keyId)).name, 'default')
  })

  test('key:update changes what it is given, "none" clears, the rest stays', async ({ assert }) => {
    const user = await seedUser({ balance: '10', key: { rpm: 30, spendLimit: '9', spendPeriod: 'month' } })
    await ApiKey.query().where('id', user.keyId).update({ allowed_models: JSON.stringify(['edit-a']) })
    const run = async (args: string[]) => {
      const command = await ace.create(KeyUpdate, args)
      ace.ui.switchMode('raw')
      await command.exec()
      return command
    }
    ;(await run(['--key', String(user.keyId), '--spend-limit', 'none', '--tpm', '5000'])).assertSucceeded()
    let key = await ApiKey.findOrFail(user.keyId)
    assert.deepEqual([key.spendLimit, key.spendPeriod, key.tpm, key.rpm, key.allowedModels], [null, null, 5000, 30, ['edit-a']])
    ;(await run(['--key', String(user.keyId), '--models', 'none', '--name', 'cli'])).assertSucceeded()
    key = await ApiKey.findOrFail(user.keyId)
    assert.deepEqual([key.name, key.allowedModels, key.rpm], ['cli', null, 30])
    assert.equal((await run(['--key', 'sk-gw-nope'])).exitCode, 1)
    assert.equal((await run(['--key', String(user.keyId), '--spend-period', 'day'])).exitCode, 1, 'a period needs a cap')
  })
})
