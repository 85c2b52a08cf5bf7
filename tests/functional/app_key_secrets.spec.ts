import { test } from '@japa/runner'
import { spawnSync } from 'node:child_process'
import db from '@adonisjs/lucid/services/db'
import encryption from '@adonisjs/core/services/encryption'
import { AES256GCM } from '@adonisjs/core/encryption/drivers/aes_256_gcm'
import Channel from '#models/channel'
import { testChannel, checkChannelKey } from '#actions/test_channel'
import { channelJson } from '#services/management_api'
import { unreadableSecrets, unreadableSecretsWarning } from '#services/app_key_check'
import { gateway, post, refreshCaches, resetDatabase, seedChannel, seedUser, startMock } from '#tests/helpers'
import { PanelClient } from '#tests/panel_client'
import { createUser } from '#actions/create_user'

/** What another gateway (another APP_KEY) would have saved. */
const OTHER_KEY = 'another-app-key-another-app-key-42'
const other = new AES256GCM({ id: 'gcm', key: OTHER_KEY })

test.group('Secrets saved with another APP_KEY', (group) => {
  let mock: Awaited<ReturnType<typeof startMock>>
  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    return () => mock.stop()
  })

  test('a channel whose key this APP_KEY cannot read is out of rotation, never called keyless; panel, API, test and start say why', async ({ assert }) => {
    const user = await seedUser({ balance: '5' })
    const channel = await seedChannel({ name: 'moved-over', baseUrl: `${mock.url}/v1`, models: ['akc-*'] })
    await db.from('channels').where('id', channel.id).update({ api_key_encrypted: other.encrypt('sk-upstream') })
    await refreshCaches()

    const before = mock.requests.length
    const response = await post('/v1/chat/completions', { model: 'akc-1', messages: [{ role: 'user', content: 'hi' }] }, { authorization: `Bearer ${user.key}` })
    // Before: sent up without its key (the provider's 401 then disabled the channel as "bad key").
    assert.equal(mock.requests.length, before, 'no upstream call')
    assert.equal(response.status, 503)
    assert.equal(((await response.json()) as any).error.code, 'no_available_channel')
    await (await gateway()).meter.drain()
    const rows = await db.from('usage_records').where('user_id', user.userId).select('status')
    assert.deepEqual(rows.map((r) => r.status), [503], 'the refusal is metered once')

    const row = (await Channel.find(channel.id))!
    assert.isTrue(row.keyUnreadable)
    assert.isTrue(row.enabled, 'the row is not changed: the right APP_KEY brings it back')
    assert.include(channelJson(row), { has_key: true, key_readable: false })
    const tested = await testChannel(channel.id, 'akc-1')
    assert.isFalse(tested.ok)
    assert.include(tested.error!, 'APP_KEY')
    const checked = await checkChannelKey(channel.id)
    assert.isFalse(checked.ok)
    assert.include(checked.message, 'APP_KEY')
    assert.equal(mock.requests.length, before, 'the tests did not call upstream either')

    const warning = unreadableSecretsWarning(await unreadableSecrets())
    assert.include(warning!, '1 channel key(s) (moved-over')
    assert.include(warning!, 'APP_KEY is not the one')

    await createUser({ email: 'akc-admin@test.local', password: 'admin-password', role: 'admin' })
    const panel = new PanelClient()
    await panel.login('akc-admin@test.local', 'admin-password')
    const list = await panel.get('/admin/channels')
    assert.include(list.html, 'key unreadable')
    const show = await panel.get(`/admin/channels/${channel.id}`)
    assert.include(show.html, 'saved with another APP_KEY')

    // Entering the key again puts it back in rotation.
    const fresh = (await Channel.find(channel.id))!
    fresh.setApiKey('sk-upstream')
    await fresh.save()
    await refreshCaches()
    const served = await post('/v1/chat/completions', { model: 'akc-1', messages: [{ role: 'user', content: 'hi' }] }, { authorization: `Bearer ${user.key}` })
    assert.equal(served.status, 200)
    assert.isNull(unreadableSecretsWarning(await unreadableSecrets()))
  }).timeout(30_000)

  test("the start also names the panel's SMTP password, SSO client secrets and users' webhook secrets it cannot read", async ({ assert }) => {
    await resetDatabase()
    const user = await seedUser({ balance: '1' })
    await db.from('users').where('id', user.userId).update({ alert_webhook_secret: other.encrypt('whsec') })
    await db.table('app_settings').insert({ key: 'smtp', value: JSON.stringify({ host: 'mail.local', port: 25, passwordEncrypted: other.encrypt('pw') }) })
    await db.table('app_settings').insert({
      key: 'sso',
      value: JSON.stringify({ oidc: { enabled: true, issuer: 'https://id.local', clientId: 'c', secretEncrypted: encryption.encrypt('ok') }, github: { enabled: true, clientId: 'g', secretEncrypted: other.encrypt('gh') } }),
    })
    const found = await unreadableSecrets()
    assert.equal(found.webhookAccounts, 1)
    assert.deepEqual(found.panel, ['smtp', 'github'])
    const warning = unreadableSecretsWarning(found)!
    assert.include(warning, "1 user(s)' alert webhook signing secret")
    assert.include(warning, 'the SMTP password (e-mail stops), the GitHub client secret (its sign-in fails) saved in Settings')
    assert.notInclude(warning, 'whsec')
    await db.from('app_settings').whereIn('key', ['smtp', 'sso']).delete()
    await db.from('users').where('id', user.userId).update({ alert_webhook_secret: null })
    assert.isNull(unreadableSecretsWarning(await unreadableSecrets()))
  })

  test('APP_KEY_PREVIOUS reads secrets saved with the old key; secrets:reencrypt saves them with APP_KEY', async ({ assert }) => {
    await resetDatabase()
    const channel = await seedChannel({ name: 'rotated', baseUrl: `${mock.url}/v1`, models: ['rot-*'] })
    const lost = await seedChannel({ name: 'lost', baseUrl: `${mock.url}/v1`, models: ['lost-*'] })
    await db.from('channels').where('id', channel.id).update({ api_key_encrypted: other.encrypt('sk-rotated') })
    await db.from('channels').where('id', lost.id).update({
      api_key_encrypted: new AES256GCM({ id: 'gcm', key: 'a-third-key-nobody-has-a-third-key' }).encrypt('sk-lost'),
    })
    const user = await seedUser()
    await db.from('users').where('id', user.userId).update({ totp_secret_encrypted: other.encrypt('JBSWY3DPEHPK3PXP') })

    const run = (env: Record<string, string>) =>
      spawnSync(process.execPath, ['ace.js', 'secrets:reencrypt'], {
        cwd: process.cwd(),
        env: { ...process.env, ...env },
        encoding: 'utf8',
        timeout: 60_000,
      })
    // Without the old key, nothing is readable: nothing changes.
    const without = run({})
    assert.equal(without.status, 1, without.stderr)
    assert.include(without.stdout + without.stderr, '2 channel key(s) (rotated, lost)')

    const rotated = run({ APP_KEY_PREVIOUS: `unused-old-key-unused-old-key-01, ${OTHER_KEY}` })
    assert.equal(rotated.status, 1, 'the lost key is still unreadable: said, exit 1')
    assert.include(rotated.stdout + rotated.stderr, '1 channel key(s), 1 two-factor secret(s)')
    assert.include(rotated.stdout + rotated.stderr, '(lost)')

    // Now this process's APP_KEY (which has no previous keys) reads them.
    const saved = await db.from('channels').where('id', channel.id).first()
    assert.equal(encryption.decrypt(saved.api_key_encrypted), 'sk-rotated')
    const account = await db.from('users').where('id', user.userId).first()
    assert.equal(encryption.decrypt(account.totp_secret_encrypted), 'JBSWY3DPEHPK3PXP')
    const audit = await db.from('audit_log').where('action', 'secrets.reencrypt').orderBy('id', 'desc').first()
    assert.include(audit.summary, '1 channel key(s), 1 two-factor secret(s)')
    assert.deepEqual((await unreadableSecrets()).channels, ['lost'])
  }).timeout(150_000)
})
