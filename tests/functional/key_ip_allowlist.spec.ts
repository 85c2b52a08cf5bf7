import { test } from '@japa/runner'
import app from '@adonisjs/core/services/app'
import ace from '@adonisjs/core/services/ace'
import db from '@adonisjs/lucid/services/db'
import ApiKey from '#models/api_key'
import KeyCreate from '#commands/key_create'
import KeyUpdate from '#commands/key_update'
import { createUser } from '#actions/create_user'
import { createApiKey } from '#actions/issue_api_key'
import { updateApiKey } from '#actions/update_api_key'
import { trustedProxies } from '#services/trusted_proxies'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { adminApi, baseUrl, post, refreshCaches, resetDatabase, seedChannel, seedUser, startMock, usageRows } from '#tests/helpers'
import { PageClient, htmlText } from '#tests/page_client'
import { PanelClient, textOf } from '#tests/panel_client'

const hello = [{ role: 'user', content: 'hi' }]

async function chat(key: string, headers: Record<string, string> = {}) {
  const answer = await post('/v1/chat/completions', { model: 'ip-model', messages: hello }, { authorization: `Bearer ${key}`, ...headers })
  return { status: answer.status, body: (await answer.json()) as any }
}

async function models(key: string, headers: Record<string, string> = {}) {
  const answer = await fetch(`${baseUrl()}/v1/models`, { headers: { authorization: `Bearer ${key}`, ...headers } })
  return { status: answer.status, body: (await answer.json()) as any }
}

/** The gateway hears of an edit through NOTIFY: wait for the answer to change (no cache refresh by hand). */
async function eventually(check: () => Promise<boolean>) {
  for (let i = 0; i < 40; i++) {
    if (await check()) return true
    await new Promise((r) => setTimeout(r, 50))
  }
  return false
}

/** A key of a fresh user limited to `ips` (through the create action, as every editor does). */
async function limitedKey(ips: string[] | null, options: { manage?: boolean } = {}) {
  const email = `ip-${Date.now()}-${Math.random()}@test.local`
  await createUser({ email, password: 'password123', role: options.manage ? 'admin' : 'user' })
  const { apiKey, key } = await createApiKey({ userRef: email, allowedIps: ips, manage: options.manage })
  await refreshCaches()
  return { key, keyId: apiKey.id, userId: apiKey.userId, email }
}

async function runAce(command: typeof KeyCreate | typeof KeyUpdate, args: string[]) {
  const instance = await ace.create(command, args)
  ace.ui.switchMode('raw')
  await instance.exec()
  return instance
}

async function api(method: string, path: string, key: string, body?: unknown) {
  return adminApi(method, path, key, body)
}

/** The server's own http config (the object request.ip() and the API lane both read): TRUSTED_PROXIES for a test. */
async function withTrustedProxies<T>(setting: string, work: () => Promise<T>): Promise<T> {
  const http = app.config.get<{ trustProxy: (address: string, hop: number) => boolean }>('app.http')
  const before = http.trustProxy
  http.trustProxy = trustedProxies(setting)
  try {
    return await work()
  } finally {
    http.trustProxy = before
  }
}

test.group('API keys: IP allowlists', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'mock', baseUrl: mock.url, models: ['ip-model', 'gemini-ip', 'claude-ip'] })
    return () => mock.stop()
  })

  test('a key limited to 127.0.0.1 works from loopback, through the lane and the router', async ({ assert }) => {
    const user = await limitedKey(['127.0.0.1'])
    assert.deepEqual((await ApiKey.findOrFail(user.keyId)).allowedIps, ['127.0.0.1'])
    assert.equal((await chat(user.key)).status, 200)
    assert.equal((await models(user.key)).status, 200)
  })

  test('a key limited to 10.0.0.0/8 is refused from loopback with 403 ip_not_allowed in each endpoint\'s wire format', async ({ assert }) => {
    const user = await limitedKey(['10.0.0.0/8'])
    const openai = await chat(user.key)
    assert.equal(openai.status, 403)
    assert.equal(openai.body.error.code, 'ip_not_allowed')
    assert.equal(openai.body.error.type, 'permission_error')
    assert.include(openai.body.error.message, '127.0.0.1')

    const messages = await post('/v1/messages', { model: 'claude-ip', max_tokens: 16, messages: hello }, { 'x-api-key': user.key, 'anthropic-version': '2023-06-01' })
    assert.equal(messages.status, 403)
    assert.equal(messages.headers.get('x-should-retry'), 'false')
    const anthropic: any = await messages.json()
    assert.equal(anthropic.type, 'error')
    assert.equal(anthropic.error.type, 'permission_error')
    assert.include(anthropic.error.message, '127.0.0.1')

    const gemini = await post('/v1beta/models/gemini-ip:generateContent', { contents: [{ role: 'user', parts: [{ text: 'hi' }] }] }, { 'x-goog-api-key': user.key })
    assert.equal(gemini.status, 403)
    const google: any = await gemini.json()
    assert.deepEqual([google.error.code, google.error.status], [403, 'PERMISSION_DENIED'])
    assert.include(google.error.message, '127.0.0.1')

    const listed = await models(user.key)
    assert.equal(listed.status, 403)
    assert.equal(listed.body.error.code, 'ip_not_allowed')
    // Like a bad key's 401, the call is not admitted: no usage row, nothing charged.
    assert.lengthOf(await usageRows(user.userId), 0)
  })

  test('the management API is refused to a management key used from outside its list', async ({ assert }) => {
    const admin = await limitedKey(['10.0.0.0/8'], { manage: true })
    const refused = await api('GET', '/keys', admin.key)
    assert.equal(refused.status, 403)
    assert.equal(refused.body.error.code, 'ip_not_allowed')
    const allowed = await limitedKey(['127.0.0.0/8', '::1'], { manage: true })
    assert.equal((await api('GET', '/keys', allowed.key)).status, 200)
  })

  test('X-Forwarded-For is ignored unless the peer is a trusted proxy, and then honoured by the lane and the router alike', async ({ assert }) => {
    const user = await limitedKey(['10.0.0.0/8'])
    const forwarded = { 'x-forwarded-for': '10.1.2.3' }
    const spoofed = await chat(user.key, forwarded)
    assert.equal(spoofed.status, 403, 'an untrusted peer cannot claim an address')
    assert.include(spoofed.body.error.message, '127.0.0.1')
    assert.equal((await models(user.key, forwarded)).status, 403)

    await withTrustedProxies('loopback', async () => {
      assert.equal((await chat(user.key, forwarded)).status, 200, 'behind a trusted proxy the client is the forwarded address')
      assert.equal((await models(user.key, forwarded)).status, 200)
      const outside = await chat(user.key, { 'x-forwarded-for': '192.0.2.9' })
      assert.equal(outside.status, 403)
      assert.include(outside.body.error.message, '192.0.2.9')
      // The client is the nearest hop not from a trusted proxy: what a client prepends is not believed.
      const chain = await chat(user.key, { 'x-forwarded-for': '10.9.9.9, 192.0.2.9' })
      assert.equal(chain.status, 403)
      assert.include(chain.body.error.message, '192.0.2.9')
    })
    assert.equal((await chat(user.key, forwarded)).status, 403, 'trust withdrawn: the header is ignored again')
  })

  test('key:update --ips and the management API change the list at once; "none" and null clear it', async ({ assert }) => {
    const user = await limitedKey(null)
    const admin = await limitedKey(null, { manage: true })
    assert.equal((await chat(user.key)).status, 200)

    ;(await runAce(KeyUpdate, ['--key', String(user.keyId), '--ips', '10.0.0.0/8, 2001:db8::/32'])).assertSucceeded()
    assert.deepEqual((await ApiKey.findOrFail(user.keyId)).allowedIps, ['10.0.0.0/8', '2001:db8::/32'])
    assert.isTrue(await eventually(async () => (await chat(user.key)).status === 403))
    const audit = await db.from('audit_log').where('action', 'key.update').where('subject_id', user.keyId).first()
    assert.include(audit.summary, 'allowedIps: — → 10.0.0.0/8,2001:db8::/32')

    // A flag left out keeps the list.
    ;(await runAce(KeyUpdate, ['--key', String(user.keyId), '--name', 'renamed'])).assertSucceeded()
    assert.deepEqual((await ApiKey.findOrFail(user.keyId)).allowedIps, ['10.0.0.0/8', '2001:db8::/32'])
    ;(await runAce(KeyUpdate, ['--key', String(user.keyId), '--ips', 'none'])).assertSucceeded()
    assert.isNull((await ApiKey.findOrFail(user.keyId)).allowedIps)
    assert.isTrue(await eventually(async () => (await chat(user.key)).status === 200))

    const patched = await api('PATCH', `/keys/${user.keyId}`, admin.key, { allowed_ips: ['192.0.2.0/24'] })
    assert.equal(patched.status, 200)
    assert.deepEqual(patched.body.allowed_ips, ['192.0.2.0/24'])
    assert.isTrue(await eventually(async () => (await chat(user.key)).status === 403))
    // A PATCH of another field keeps the list; info shows it.
    await api('PATCH', `/keys/${user.keyId}`, admin.key, { rpm: 100 })
    assert.deepEqual((await api('GET', `/keys/${user.keyId}`, admin.key)).body.allowed_ips, ['192.0.2.0/24'])
    const cleared = await api('PATCH', `/keys/${user.keyId}`, admin.key, { allowed_ips: null })
    assert.isNull(cleared.body.allowed_ips)
    assert.isTrue(await eventually(async () => (await chat(user.key)).status === 200))

    const created = await api('POST', '/keys', admin.key, { user: user.email, name: 'office', allowed_ips: ['127.0.0.1', '::FFFF:10.0.0.1'] })
    assert.equal(created.status, 201)
    assert.deepEqual(created.body.allowed_ips, ['127.0.0.1', '10.0.0.1'])
    const listed = await api('GET', `/keys?user=${user.userId}`, admin.key)
    assert.deepEqual(listed.body.data.find((k: any) => k.name === 'office').allowed_ips, ['127.0.0.1', '10.0.0.1'])
    assert.equal((await chat(created.body.key)).status, 200)

    const ace = await runAce(KeyCreate, ['--user', user.email, '--name', 'ci', '--ips', '10.0.0.0/8'])
    ace.assertSucceeded()
    const ciKey = await ApiKey.query().where('user_id', user.userId).where('name', 'ci').firstOrFail()
    assert.deepEqual(ciKey.allowedIps, ['10.0.0.0/8'])
  })

  test('bad entries are refused with the field named: management API, ace', async ({ assert }) => {
    const user = await limitedKey(['127.0.0.1'])
    const admin = await limitedKey(null, { manage: true })
    const badPatch = await api('PATCH', `/keys/${user.keyId}`, admin.key, { allowed_ips: ['10.0.0.1', '10.0.0.0/33'] })
    assert.equal(badPatch.status, 400)
    assert.equal(badPatch.body.error.code, 'invalid_field')
    assert.include(badPatch.body.error.message, 'allowed_ips')
    assert.include(badPatch.body.error.message, '10.0.0.0/33')
    const badCreate = await api('POST', '/keys', admin.key, { user: user.email, allowed_ips: ['not-an-ip'] })
    assert.equal(badCreate.status, 400)
    assert.equal(badCreate.body.error.code, 'invalid_field')
    assert.include(badCreate.body.error.message, 'allowed_ips')
    assert.include(badCreate.body.error.message, 'not-an-ip')
    const tooMany = await api('PATCH', `/keys/${user.keyId}`, admin.key, { allowed_ips: Array.from({ length: 33 }, (_, i) => `10.0.0.${i}`) })
    assert.equal(tooMany.status, 400)
    assert.include(tooMany.body.error.message, 'at most 32')
    const notArray = await api('PATCH', `/keys/${user.keyId}`, admin.key, { allowed_ips: '10.0.0.1' })
    assert.equal(notArray.status, 400)

    const refused = await runAce(KeyUpdate, ['--key', String(user.keyId), '--ips', '10.0.0.1,fe80::1%eth0'])
    assert.equal(refused.exitCode, 1)
    refused.assertLog('[ red(error) ] --ips: "fe80::1%eth0" is not an IP address or CIDR range (such as 203.0.113.7, 10.0.0.0/8 or 2001:db8::/32).', 'stderr')
    assert.deepEqual((await ApiKey.findOrFail(user.keyId)).allowedIps, ['127.0.0.1'], 'nothing written')
    assert.equal((await runAce(KeyCreate, ['--user', user.email, '--ips', '300.1.1.1'])).exitCode, 1)
    assert.equal(await ApiKey.query().where('user_id', user.userId).count('* as n').first().then((r: any) => Number(r.$extras.n)), 1)
    // The actions hold the same rule for callers that skip the validators.
    await assert.rejects(() => updateApiKey(user.keyId, { name: 'x', allowedIps: ['10.0.0.0/8x'] }), /not an IP address or CIDR range/)
  })

  test('the admin panel saves the list on create and edit, shows it, and puts a bad entry beside the field', async ({ assert }) => {
    const owner = await limitedKey(null)
    const { user } = await createUser({ email: `ip-admin-${Date.now()}@test.local`, password: 'password123', role: 'admin' })
    const panel = new PanelClient()
    await panel.login(user.email, 'password123')

    await panel.get(`/admin/keys/new?user=${owner.userId}`)
    const issued = await panel.post('/admin/keys', { user: owner.email, name: 'panel-ip', allowedIps: '10.0.0.0/8, 2001:DB8::/32' })
    assert.equal(issued.status, 302)
    const created = await ApiKey.query().where('user_id', owner.userId).where('name', 'panel-ip').firstOrFail()
    assert.deepEqual(created.allowedIps, ['10.0.0.0/8', '2001:db8::/32'])
    const show = await panel.get(`/admin/keys/${created.id}`)
    assert.include(textOf(show.html), '10.0.0.0/8, 2001:db8::/32')
    const audit = await db.from('audit_log').where('action', 'key.create').where('subject_id', created.id).first()
    assert.deepEqual(audit.after.allowedIps, ['10.0.0.0/8', '2001:db8::/32'])

    const form = await panel.get(`/admin/keys/${owner.keyId}/edit`)
    assert.include(form.html, 'name="allowedIps"')
    const saved = await panel.post(`/admin/keys/${owner.keyId}`, { name: 'default', allowedIps: '10.0.0.0/8' })
    assert.equal(saved.status, 302)
    assert.deepEqual((await ApiKey.findOrFail(owner.keyId)).allowedIps, ['10.0.0.0/8'])
    assert.isTrue(await eventually(async () => (await chat(owner.key)).status === 403))
    assert.include((await panel.get(`/admin/keys/${owner.keyId}/edit`)).html, 'value="10.0.0.0/8"')

    const refused = await panel.post(`/admin/keys/${owner.keyId}`, { name: 'default', allowedIps: '127.0.0.1, 10.0.0.256' })
    const text = textOf((await panel.follow(refused)).html)
    assert.include(text, 'Allowed IPs')
    assert.include(text, '"10.0.0.256" is not an IP address or CIDR range')
    assert.deepEqual((await ApiKey.findOrFail(owner.keyId)).allowedIps, ['10.0.0.0/8'])

    // An empty field clears the list.
    await panel.get(`/admin/keys/${owner.keyId}/edit`)
    await panel.post(`/admin/keys/${owner.keyId}`, { name: 'default', allowedIps: '' })
    assert.isNull((await ApiKey.findOrFail(owner.keyId)).allowedIps)
    assert.isTrue(await eventually(async () => (await chat(owner.key)).status === 200))
  })

  test('a user restricts their own key in the portal: create, edit, the list shows it, bad entries in their language', async ({ assert }) => {
    const alice = await seedUser({ balance: '10' })
    const client = new PageClient()
    await client.login(alice.email)

    await client.get('/dashboard/keys')
    const created = await client.post('/dashboard/keys', { name: 'server', allowed_ips: '203.0.113.7 10.0.0.0/8' })
    assert.equal(created.status, 200)
    const key = await ApiKey.query().where('user_id', alice.userId).where('name', 'server').firstOrFail()
    assert.deepEqual(key.allowedIps, ['203.0.113.7', '10.0.0.0/8'])
    const audit = await db.from('audit_log').where('action', 'key.create').where('subject_id', key.id).first()
    assert.equal(audit.source, 'portal')
    const list = htmlText((await client.get('/dashboard/keys')).body)
    assert.include(list, 'Allowed IPs')
    assert.include(list, '203.0.113.7, 10.0.0.0/8')
    assert.include(list, 'Any address')

    await client.get(`/dashboard/keys/${alice.keyId}/edit`)
    const saved = await client.post(`/dashboard/keys/${alice.keyId}`, { name: 'default', allowed_ips: '10.0.0.0/8' })
    assert.equal(saved.location, '/dashboard/keys')
    assert.deepEqual((await ApiKey.findOrFail(alice.keyId)).allowedIps, ['10.0.0.0/8'])
    assert.isTrue(await eventually(async () => (await chat(alice.key)).status === 403))
    assert.include((await client.get(`/dashboard/keys/${alice.keyId}/edit`)).body, 'value="10.0.0.0/8"')

    await client.post(`/dashboard/keys/${alice.keyId}`, { name: 'default', allowed_ips: '10.0.0.0/99' })
    assert.include(htmlText((await client.get(`/dashboard/keys/${alice.keyId}/edit`)).body), '"10.0.0.0/99" is not an IP address or CIDR range')
    assert.deepEqual((await ApiKey.findOrFail(alice.keyId)).allowedIps, ['10.0.0.0/8'])

    await client.get('/lang/vi')
    await client.get(`/dashboard/keys/${alice.keyId}/edit`)
    await client.post(`/dashboard/keys/${alice.keyId}`, { name: 'default', allowed_ips: 'abc' })
    assert.include(htmlText((await client.get(`/dashboard/keys/${alice.keyId}/edit`)).body), '"abc" không phải địa chỉ IP hay dải CIDR')

    await client.post(`/dashboard/keys/${alice.keyId}`, { name: 'default', allowed_ips: '' })
    assert.isNull((await ApiKey.findOrFail(alice.keyId)).allowedIps)
    assert.isTrue(await eventually(async () => (await chat(alice.key)).status === 200))
  })
})
