import { test } from '@japa/runner'
import ace from '@adonisjs/core/services/ace'
import db from '@adonisjs/lucid/services/db'
import { createUser } from '#actions/create_user'
import ChannelCreate from '#commands/channel_create'
import { resetDatabase } from '#tests/helpers'
import { PanelClient, textOf } from '#tests/panel_client'

/** The text of a field's error (form/field.edge: <small id="f-NAME-error">). */
function fieldError(html: string, name: string) {
  const match = html.match(new RegExp(`id="f-${name}-error">([^<]*)<`))
  return match ? textOf(match[1]).trim() : null
}

async function signedInAdmin() {
  await resetDatabase()
  const email = `forms-${Date.now()}@test.local`
  await createUser({ email, password: 'admin-password', role: 'admin' })
  const client = new PanelClient()
  await client.login(email, 'admin-password')
  return client
}

test.group('Admin panel forms: messages, every error at once, checkboxes', () => {
  test('validation messages name the field as the form labels it, not the code name', async ({ assert }) => {
    const client = await signedInAdmin()

    await client.get('/admin/channels/new')
    const channel = await client.follow(
      await client.post('/admin/channels', { name: ' ', provider: 'custom', baseUrl: 'not a url', models: 'm-*' })
    )
    assert.equal(fieldError(channel.html, 'baseUrl'), 'Base URL must be a full URL starting with http:// or https://.')
    assert.equal(fieldError(channel.html, 'name'), 'Name is required.')

    const user = await createUser({ email: 'owner@test.local' })
    await client.get('/admin/keys/new')
    const key = await client.follow(
      await client.post('/admin/keys', { user: String(user.user.id), name: 'k', expiresInDays: '0', spendLimit: '1,5' })
    )
    assert.equal(fieldError(key.html, 'expiresInDays'), 'Expires after (days) must be at least 1.')
    assert.equal(fieldError(key.html, 'spendLimit'), 'Spend cap must be an amount in USD such as 5 or 0.50, with at most 6 decimals.')

    await client.get('/admin/plans/new')
    const plan = await client.follow(await client.post('/admin/plans', { name: '', rpm: '1.5' }))
    assert.equal(fieldError(plan.html, 'name'), 'Name is required.')
    assert.equal(fieldError(plan.html, 'rpm'), 'Requests per minute must be a whole number.')
    assert.notMatch(textOf(plan.html), /The \w+ field/)
  })

  test('the channel form refuses empty models and silly timeouts, and shows every error with a bad mapping', async ({ assert }) => {
    const client = await signedInAdmin()
    await client.get('/admin/channels/new')
    const refused = await client.post('/admin/channels', {
      name: 'c1',
      provider: 'custom',
      baseUrl: 'http://127.0.0.1:9/v1',
      models: ' , ',
      modelMapping: 'no separator here',
      connectTimeoutMs: '5',
      totalTimeoutMs: '100000000',
    })
    const form = await client.follow(refused)
    assert.match(fieldError(form.html, 'models')!, /at least one model glob/)
    assert.match(fieldError(form.html, 'modelMapping')!, /must look like "name = value"/)
    assert.equal(fieldError(form.html, 'connectTimeoutMs'), 'Connect timeout (ms) must be at least 100.')
    assert.match(fieldError(form.html, 'totalTimeoutMs')!, /^Total timeout \(ms\) must be at most/)
    assert.equal(await db.from('channels').count('* as n').first().then((r) => Number(r.n)), 0)

    // channel:create applies the same rules (one validator)
    const command = await ace.create(ChannelCreate, ['--name', 'c2', '--provider', 'custom', '--base-url', 'http://127.0.0.1:9/v1', '--models', ',', '--connect-timeout-ms', '5', '--mapping', 'oops'])
    ace.ui.switchMode('raw')
    await command.exec()
    command.assertFailed()
    const logs = command.ui.logger.getLogs().map((l) => l.message).join('\n')
    assert.include(logs, 'at least one model glob')
    assert.include(logs, 'Connect timeout (ms) must be at least 100.')
    assert.include(logs, '"oops" must look like "name = value"')
  })

  test('a ticked checkbox stays ticked after a validation error', async ({ assert }) => {
    const client = await signedInAdmin()
    const checked = (html: string, id: string) => new RegExp(`<input type="checkbox" id="${id}"[^>]*\\bchecked\\b`).test(html)

    await client.get('/admin/plans/new')
    const plan = await client.follow(await client.post('/admin/plans', { name: '', isDefault: ['0', '1'] }))
    assert.isNotNull(fieldError(plan.html, 'name'))
    assert.isTrue(checked(plan.html, 'f-isDefault'), 'default plan box still ticked')
    const unticked = await client.follow(await client.post('/admin/plans', { name: '', isDefault: '0' }))
    assert.isFalse(checked(unticked.html, 'f-isDefault'))

    const { user } = await createUser({ email: 'tick@test.local', role: 'user' })
    await client.get(`/admin/users/${user.id}`)
    const edit = await client.follow(
      await client.post(`/admin/users/${user.id}`, { role: 'user', disabled: ['0', '1'], password: 'short' })
    )
    assert.isNotNull(fieldError(edit.html, 'password'))
    assert.isTrue(checked(edit.html, 'f-disabled'), 'disabled box still ticked')
  })
})

test.group('Error pages in the visitor language', (group) => {
  group.each.setup(() => resetDatabase())

  test('403 in the panel and 404 of a missing id follow the language picker', async ({ assert }) => {
    await createUser({ email: 'vi-user@test.local', password: 'user-password', role: 'user' })
    const user = new PanelClient()
    user.cookies.set('locale', 'vi')
    await user.login('vi-user@test.local', 'user-password')
    const forbidden = await user.get('/admin')
    assert.equal(forbidden.status, 403)
    assert.include(textOf(forbidden.html), 'Không được phép')
    assert.match(forbidden.html, /<html lang="vi">/)

    await createUser({ email: 'vi-admin@test.local', password: 'admin-password', role: 'admin' })
    const admin = new PanelClient()
    admin.cookies.set('locale', 'vi')
    await admin.login('vi-admin@test.local', 'admin-password')
    const missing = await admin.get('/admin/users/999')
    assert.equal(missing.status, 404)
    assert.include(textOf(missing.html), 'Không tìm thấy trang')

    // Without a choice: English
    const english = new PanelClient()
    await english.login('vi-user@test.local', 'user-password')
    assert.include(textOf((await english.get('/admin')).html), 'Not allowed')
  })
})
