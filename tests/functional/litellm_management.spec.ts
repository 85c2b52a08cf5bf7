import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import { createUser } from '#actions/create_user'
import { createApiKey } from '#actions/issue_api_key'
import { postLedgerEntry } from '#actions/post_ledger_entry'
import ace from '@adonisjs/core/services/ace'
import KeyBlock from '#commands/key_block'
import KeyRegenerate from '#commands/key_regenerate'
import { PageClient } from '#tests/page_client'
import { PanelClient } from '#tests/panel_client'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { adminApi, baseUrl, gateway, post, refreshCaches, resetDatabase, seedChannel, seedPrice, startMock } from '#tests/helpers'

/**
 * LiteLLM's key, spend and user management paths (/key/*, /spend/logs,
 * /user/*) with the management key, as scripts written against a LiteLLM
 * proxy call them (plain fetch: LiteLLM's python client is not available here).
 */
let adminKey = ''

async function litellm(method: string, path: string, body?: unknown, headers: Record<string, string> = { authorization: `Bearer ${adminKey}` }) {
  const response = await fetch(`${baseUrl()}${path}`, {
    method,
    headers: { ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  return { status: response.status, headers: response.headers, body: (await response.json()) as any }
}

async function chat(key: string, model = 'lite-model') {
  const response = await post('/v1/chat/completions', { model, messages: [{ role: 'user', content: 'hi' }] }, { authorization: `Bearer ${key}` })
  return { status: response.status, body: (await response.json()) as any }
}

/** The gateway hears of changes through NOTIFY: wait for the expected answer (no refresh by hand). */
async function eventually(check: () => Promise<boolean>) {
  for (let i = 0; i < 60; i++) {
    if (await check()) return true
    await new Promise((r) => setTimeout(r, 50))
  }
  return false
}

async function audit(action: string, subjectId: number) {
  return db.from('audit_log').where('action', action).where('subject_id', subjectId).orderBy('id', 'desc').first()
}

test.group('LiteLLM key, spend and user management (/key/*, /spend/logs, /user/*)', (group) => {
  let mock: MockUpstream
  let customerId = 0

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'mock', baseUrl: mock.url, models: ['lite-*', 'other-model'] })
    await seedPrice('lite-model', '50', '80')
    await seedPrice('other-model', '50', '80')
    await createUser({ email: 'ops@lite.local', password: 'password123', role: 'admin' })
    adminKey = (await createApiKey({ userRef: 'ops@lite.local', name: 'litellm-master', manage: true })).key
    const { user } = await createUser({ email: 'customer@lite.local', password: 'password123' })
    customerId = user.id
    await postLedgerEntry({ userRef: 'customer@lite.local', kind: 'topup', amount: '20' })
    await refreshCaches()
    return () => mock.stop()
  })

  test('/key/generate maps budget, duration, models and limits; the key works for its models only', async ({ assert }) => {
    const generated = await litellm('POST', '/key/generate', {
      user_id: 'customer@lite.local',
      key_alias: 'ci-bot',
      models: ['lite-*'],
      max_budget: 5,
      budget_duration: '30d',
      duration: '30d',
      rpm_limit: 60,
      tpm_limit: 100000,
      max_parallel_requests: 3,
      metadata: { team: 'ci' },
    })
    assert.equal(generated.status, 200)
    const body = generated.body
    assert.match(body.key, /^sk-gw-/)
    assert.deepEqual(
      [body.key_alias, body.user_id, body.models, body.max_budget, body.budget_duration, body.rpm_limit, body.tpm_limit, body.max_parallel_requests, body.blocked, body.spend],
      ['ci-bot', String(customerId), ['lite-*'], 5, '1mo', 60, 100000, 3, false, 0]
    )
    assert.deepEqual(body.metadata, {}, 'keys keep no metadata: the answer does not pretend to')
    const days = (Date.parse(body.expires) - Date.now()) / 86_400_000
    assert.isTrue(days > 29.9 && days <= 30.01, `expires in 30 days: ${body.expires}`)
    const row = await db.from('api_keys').where('id', Number(body.token)).first()
    assert.deepEqual([row.name, row.spend_period, Number(row.spend_limit), row.rpm, row.tpm, row.max_parallel], ['ci-bot', 'month', 5, 60, 100000, 3])
    const entry = await audit('key.create', Number(body.token))
    assert.equal(entry.source, 'api')
    assert.equal(entry.actor, 'api:litellm-master')

    assert.isTrue(await eventually(async () => (await chat(body.key)).status === 200))
    const outside = await chat(body.key, 'other-model')
    assert.equal(outside.status, 403, 'a model outside the key\'s `models` is refused')
    assert.equal(outside.body.error.code, 'model_not_allowed')
  })

  test('a budget_duration or duration the gateway cannot keep is a 400 naming the field, in LiteLLM\'s error shape', async ({ assert }) => {
    const hourly = await litellm('POST', '/key/generate', { user_id: customerId, max_budget: 1, budget_duration: '1h' })
    assert.equal(hourly.status, 400)
    assert.equal(hourly.body.error.param, 'budget_duration')
    assert.include(hourly.body.error.message, 'budget_duration')
    assert.equal(hourly.body.error.code, '400')
    assert.equal(hourly.body.error.type, 'bad_request_error')
    const shortLife = await litellm('POST', '/key/generate', { user_id: customerId, duration: '90m' })
    assert.equal(shortLife.status, 400)
    assert.equal(shortLife.body.error.param, 'duration')
    const noOwner = await litellm('POST', '/key/generate', { key_alias: 'orphan' })
    assert.equal(noOwner.status, 400)
    assert.equal(noOwner.body.error.param, 'user_id')
    const badRpm = await litellm('POST', '/key/generate', { user_id: customerId, rpm_limit: -1 })
    assert.equal(badRpm.status, 400)
    assert.equal(badRpm.body.error.param, 'rpm_limit')
    const unknownUser = await litellm('POST', '/key/generate', { user_id: 'nobody@lite.local' })
    assert.equal(unknownUser.status, 404)
    assert.equal(unknownUser.body.error.type, 'not_found_error')
    assert.equal(await db.from('api_keys').where('user_id', customerId).count('* as n').first().then((r: any) => Number(r.n)), 1)
  })

  test('/key/info, /key/update, /key/list; a user\'s own key reads itself only', async ({ assert }) => {
    const { body: made } = await litellm('POST', '/key/generate', { user_id: customerId, key_alias: 'to-update', models: ['lite-model'] })
    const info = await litellm('GET', `/key/info?key=${made.token}`)
    assert.equal(info.status, 200)
    assert.equal(info.body.key, made.token)
    assert.equal(info.body.info.key_alias, 'to-update')
    assert.notProperty(info.body.info, 'key', 'the full key is never answered again')

    const updated = await litellm('POST', '/key/update', { key: made.key, key_alias: 'renamed', max_budget: 2.5, budget_duration: '7d', rpm_limit: null, models: [] })
    assert.equal(updated.status, 200)
    assert.deepEqual([updated.body.key_alias, updated.body.max_budget, updated.body.budget_duration, updated.body.models], ['renamed', 2.5, '7d', []])
    const row = await db.from('api_keys').where('id', Number(made.token)).first()
    assert.deepEqual([row.name, Number(row.spend_limit), row.spend_period, row.allowed_models], ['renamed', 2.5, 'week', null])
    assert.equal((await audit('key.update', Number(made.token))).source, 'api')
    const summed = await litellm('POST', '/key/update', { key: made.token, max_budget: 0.1 + 0.2, models: ['all-proxy-models'] })
    assert.equal(summed.status, 200, 'a float sum is kept to the micro-dollar')
    assert.deepEqual([summed.body.max_budget, summed.body.models], [0.3, []])
    assert.isNull((await db.from('api_keys').where('id', Number(made.token)).first()).allowed_models, 'all-proxy-models: what the plan allows')
    const refused = await litellm('POST', '/key/update', { key: made.token, budget_duration: '2d' })
    assert.equal(refused.status, 400)
    assert.equal(refused.body.error.param, 'budget_duration')

    // The user's own key: /key/info without `key` is itself; another key, or any admin path, is refused.
    assert.isTrue(await eventually(async () => (await litellm('GET', '/key/info', undefined, { 'x-litellm-api-key': made.key })).status === 200))
    const self = await litellm('GET', '/key/info', undefined, { 'x-litellm-api-key': `Bearer ${made.key}` })
    assert.equal(self.body.info.key_alias, 'renamed')
    const other = await litellm('GET', '/key/info?key=1', undefined, { authorization: `Bearer ${made.key}` })
    assert.equal(other.status, 403)
    assert.equal(other.body.error.type, 'auth_error')
    const list = await litellm('GET', `/key/list?user_id=${customerId}&return_full_object=true&size=1`)
    assert.equal(list.status, 200)
    assert.equal(list.body.keys.length, 1)
    assert.equal(list.body.total_count, 2)
    assert.equal(list.body.total_pages, 2)
    assert.equal(list.body.keys[0].token, made.token, 'newest first')
    const python = await litellm('GET', `/key/list?user_id=${customerId}&return_full_object=True`)
    assert.equal(python.body.keys[0].key_alias, 'renamed')
    const repeated = await litellm('GET', `/key/list?return_full_object=true&return_full_object=false&user_id=a&user_id=b`)
    assert.equal(repeated.status, 400)
    const tokens = await litellm('GET', `/key/list?user_id=customer@lite.local`)
    assert.include(tokens.body.keys, made.token, 'tokens only without return_full_object')
    assert.lengthOf(tokens.body.keys, 2)
  })

  test('/key/block refuses the key with a 401 in OpenAI\'s format; /key/unblock lets it work again', async ({ assert }) => {
    const { body: made } = await litellm('POST', '/key/generate', { user_id: customerId, key_alias: 'blockable' })
    assert.isTrue(await eventually(async () => (await chat(made.key)).status === 200))
    const blocked = await litellm('POST', '/key/block', { key: made.token })
    assert.equal(blocked.status, 200)
    assert.isTrue(blocked.body.blocked)
    assert.isTrue(await eventually(async () => (await chat(made.key)).status === 401))
    const refused = await chat(made.key)
    assert.equal(refused.body.error.code, 'invalid_api_key')
    assert.equal(refused.body.error.message, 'This API key is blocked')
    assert.equal((await audit('key.block', Number(made.token))).source, 'api')
    // The owner's portal and the admin panel say so (not "Expired", not "active").
    const owner = new PageClient()
    await owner.login('customer@lite.local')
    const portal = await owner.get('/dashboard/keys')
    assert.match(portal.body, /badge--bad">Blocked</)
    const panel = new PanelClient()
    await panel.login('ops@lite.local', 'password123')
    assert.include((await panel.get(`/admin/keys/${made.token}`)).html, 'badge--bad">blocked<')
    assert.include((await panel.get('/admin/keys?status=blocked')).html, `/admin/keys/${made.token}"`)
    assert.notInclude((await panel.get('/admin/keys?status=active')).html, `/admin/keys/${made.token}"`)

    // `blocked: null` (LiteLLM's clients send unset fields as null) changes nothing, as on /key/generate.
    const untouched = await litellm('POST', '/key/update', { key: made.token, blocked: null, rpm_limit: 7 })
    assert.equal(untouched.status, 200)
    assert.isTrue(untouched.body.blocked)
    assert.equal(untouched.body.rpm_limit, 7)

    const unblocked = await litellm('POST', '/key/unblock', { key: made.token })
    assert.equal(unblocked.status, 200)
    assert.isFalse(unblocked.body.blocked)
    assert.isTrue(await eventually(async () => (await chat(made.key)).status === 200))
    assert.equal((await audit('key.unblock', Number(made.token))).source, 'api')
  })

  test('/key/regenerate: the old key is refused, the new one works, same token; /key/delete revokes', async ({ assert }) => {
    const { body: made } = await litellm('POST', '/key/generate', { user_id: customerId, key_alias: 'rotating' })
    assert.isTrue(await eventually(async () => (await chat(made.key)).status === 200))
    const regenerated = await litellm('POST', `/key/${made.token}/regenerate`)
    assert.equal(regenerated.status, 200)
    assert.equal(regenerated.body.token, made.token)
    assert.match(regenerated.body.key, /^sk-gw-/)
    assert.notEqual(regenerated.body.key, made.key)
    assert.isTrue(await eventually(async () => (await chat(made.key)).status === 401), 'the old key is refused')
    assert.equal((await chat(regenerated.body.key)).status, 200)
    assert.equal((await audit('key.regenerate', Number(made.token))).source, 'api')
    const again = await litellm('POST', '/key/regenerate', { key: regenerated.body.key })
    assert.equal(again.status, 200)
    assert.isTrue(await eventually(async () => (await chat(again.body.key)).status === 200))

    const deleted = await litellm('POST', '/key/delete', { keys: [made.token] })
    assert.equal(deleted.status, 200)
    assert.deepEqual(deleted.body.deleted_keys, [made.token])
    assert.isTrue(await eventually(async () => (await chat(again.body.key)).status === 401))
    assert.equal((await audit('key.revoke', Number(made.token))).source, 'api')
    const gone = await litellm('GET', `/key/info?key=${made.token}`)
    assert.equal(gone.status, 404)
    assert.deepEqual(gone.body.error.code, '404')
    const unknown = await litellm('POST', '/key/delete', { keys: ['sk-gw-unknown-key'] })
    assert.equal(unknown.status, 404)
  })

  test('/spend/logs answers the usage rows in LiteLLM\'s SpendLogs shape; spend is the row\'s cost', async ({ assert }) => {
    const { body: made } = await litellm('POST', '/key/generate', { user_id: customerId, key_alias: 'metered' })
    assert.isTrue(await eventually(async () => (await chat(made.key)).status === 200))
    await (await gateway()).meter.drain()
    const row = await db.from('usage_records').where('api_key_id', Number(made.token)).orderBy('id', 'desc').first()
    const logs = await litellm('GET', `/spend/logs?api_key=${made.token}`)
    assert.equal(logs.status, 200)
    assert.isArray(logs.body)
    assert.lengthOf(logs.body, 1)
    const log = logs.body[0]
    assert.equal(log.request_id, row.request_id)
    assert.equal(log.api_key, made.token)
    assert.equal(log.user, String(customerId))
    assert.equal(log.model, 'lite-model')
    assert.equal(log.spend, Number(row.cost))
    assert.isAbove(log.spend, 0)
    assert.equal(log.prompt_tokens, row.prompt_tokens)
    assert.equal(log.completion_tokens, row.completion_tokens)
    assert.equal(log.total_tokens, row.prompt_tokens + row.completion_tokens)
    assert.equal(log.startTime, new Date(row.created_at).toISOString())
    assert.equal(log.status, 'success')
    const info = await litellm('GET', `/key/info?key=${made.token}`)
    assert.equal(info.body.info.spend, Number(row.cost), 'the key\'s spend is its usage rows\' cost')

    const byUser = await litellm('GET', `/spend/logs?user_id=customer@lite.local&page_size=1`)
    assert.lengthOf(byUser.body, 1)
    assert.isNotNull(byUser.headers.get('x-next-before'), 'more rows: the header says where to go on')
    const next = await litellm('GET', `/spend/logs?user_id=${customerId}&page_size=1&before=${byUser.headers.get('x-next-before')}`)
    assert.lengthOf(next.body, 1)
    assert.notEqual(next.body[0].request_id, byUser.body[0].request_id)
    const oldRange = await litellm('GET', `/spend/logs?api_key=${made.token}&start_date=2020-01-01&end_date=2020-01-31`)
    assert.deepEqual(oldRange.body, [])
    const badDate = await litellm('GET', '/spend/logs?start_date=yesterday')
    assert.equal(badDate.status, 400)
    assert.equal(badDate.body.error.param, 'start_date')
    const tooBig = await litellm('GET', '/spend/logs?page_size=5000')
    assert.equal(tooBig.status, 400)
  })

  test('/user/new, /user/info, /user/update, /user/list', async ({ assert }) => {
    const created = await litellm('POST', '/user/new', { user_email: 'new@lite.local', user_role: 'internal_user', max_budget: 10, key_alias: 'first' })
    assert.equal(created.status, 200)
    assert.equal(created.body.user_email, 'new@lite.local')
    assert.equal(created.body.user_role, 'internal_user')
    assert.isNull(created.body.max_budget, 'a user max_budget is not stored: balances here are prepaid')
    assert.match(created.body.key, /^sk-gw-/)
    assert.isString(created.body.password)
    const userId = Number(created.body.user_id)
    assert.equal((await audit('user.create', userId)).source, 'api')
    assert.equal((await db.from('users').where('id', userId).first()).balance, '0.000000000000')

    const info = await litellm('GET', `/user/info?user_id=${userId}`)
    assert.equal(info.status, 200)
    assert.equal(info.body.user_info.user_email, 'new@lite.local')
    assert.deepEqual(info.body.keys.map((k: any) => [k.token, k.key_alias]), [[created.body.token, 'first']])
    const byEmail = await litellm('GET', '/user/info?user_id=new@lite.local')
    assert.equal(byEmail.body.user_id, String(userId))

    const updated = await litellm('POST', '/user/update', { user_id: String(userId), user_role: 'proxy_admin' })
    assert.equal(updated.status, 200)
    assert.equal(updated.body.user_role, 'proxy_admin')
    assert.equal((await db.from('users').where('id', userId).first()).role, 'admin')
    assert.equal((await audit('user.update', userId)).source, 'api')
    const badRole = await litellm('POST', '/user/update', { user_id: userId, user_role: 'emperor' })
    assert.equal(badRole.status, 400)
    assert.equal(badRole.body.error.param, 'user_role')
    const missing = await litellm('GET', '/user/info?user_id=999999')
    assert.equal(missing.status, 404)

    const noKey = await litellm('POST', '/user/new', { user_email: 'nokey@lite.local', auto_create_key: false })
    assert.isNull(noKey.body.key)
    const list = await litellm('GET', '/user/list?page_size=2')
    assert.equal(list.status, 200)
    assert.deepEqual(list.body.users.map((u: any) => u.user_email), ['nokey@lite.local', 'new@lite.local'])
    assert.equal(list.body.total, 4)
    assert.equal(list.body.total_pages, 2)
    const badAlias = await litellm('POST', '/user/new', { user_email: 'badalias@lite.local', key_alias: { name: 'x' } })
    assert.equal(badAlias.status, 400)
    assert.equal(badAlias.body.error.param, 'key_alias')
    assert.isNull(await db.from('users').where('email', 'badalias@lite.local').first(), 'nothing is created')
    const duplicate = await litellm('POST', '/user/new', { user_email: 'new@lite.local' })
    assert.equal(duplicate.status, 400)
    assert.equal(duplicate.body.error.param, 'user_email')
  })

  test('auth: no key 401, a user\'s key 403, both in LiteLLM\'s shape; x-litellm-api-key carries the management key', async ({ assert }) => {
    const { key: userKey } = await createApiKey({ userRef: 'customer@lite.local', name: 'plain' })
    await refreshCaches()
    const anonymous = await litellm('POST', '/key/generate', { user_id: customerId }, {})
    assert.equal(anonymous.status, 401)
    assert.deepEqual(Object.keys(anonymous.body.error).sort(), ['code', 'message', 'param', 'type'])
    assert.equal(anonymous.body.error.code, '401')
    assert.equal(anonymous.body.error.type, 'auth_error')
    for (const [method, path] of [['POST', '/key/generate'], ['GET', '/key/list'], ['GET', '/spend/logs'], ['POST', '/user/new'], ['GET', '/user/list'], ['POST', '/key/block']]) {
      const refused = await litellm(method, path, method === 'POST' ? { user_id: customerId, user_email: 'x@lite.local', key: '1' } : undefined, { authorization: `Bearer ${userKey}` })
      assert.equal(refused.status, 403, `${method} ${path}`)
      assert.equal(refused.body.error.code, '403')
    }
    assert.isNull(await db.from('users').where('email', 'x@lite.local').first())
    const viaHeader = await litellm('GET', '/key/list', undefined, { 'x-litellm-api-key': adminKey })
    assert.equal(viaHeader.status, 200)
    const unknownPath = await litellm('GET', '/key/nothing-here')
    assert.equal(unknownPath.status, 404)
    assert.equal(unknownPath.body.error.code, '404')
  })

  test('the management API does the same: PATCH /api/admin/keys/{id} {blocked}, POST /api/admin/keys/{id}/regenerate', async ({ assert }) => {
    const made = await adminApi('POST', '/keys', adminKey, { user: customerId, name: 'native' })
    assert.isTrue(await eventually(async () => (await chat(made.body.key)).status === 200))
    const blocked = await adminApi('PATCH', `/keys/${made.body.id}`, adminKey, { blocked: true })
    assert.equal(blocked.status, 200)
    assert.isString(blocked.body.blocked_at)
    assert.isTrue(await eventually(async () => (await chat(made.body.key)).status === 401))
    const badValue = await adminApi('PATCH', `/keys/${made.body.id}`, adminKey, { blocked: 'yes' })
    assert.equal(badValue.status, 400)
    const unblocked = await adminApi('PATCH', `/keys/${made.body.id}`, adminKey, { blocked: false, name: 'native-2' })
    assert.deepEqual([unblocked.body.blocked_at, unblocked.body.name], [null, 'native-2'])
    assert.isTrue(await eventually(async () => (await chat(made.body.key)).status === 200))
    const regenerated = await adminApi('POST', `/keys/${made.body.id}/regenerate`, adminKey)
    assert.equal(regenerated.status, 200)
    assert.equal(regenerated.body.id, made.body.id)
    assert.isTrue(await eventually(async () => (await chat(made.body.key)).status === 401))
    assert.equal((await chat(regenerated.body.key)).status, 200)
    await adminApi('DELETE', `/keys/${made.body.id}`, adminKey)
    const revoked = await adminApi('POST', `/keys/${made.body.id}/regenerate`, adminKey)
    assert.equal(revoked.status, 400, 'a revoked key is history')
  })

  test('ace key:block [--unblock] and key:regenerate: the same actions, audited as cli', async ({ assert }) => {
    const made = await adminApi('POST', '/keys', adminKey, { user: customerId, name: 'from-cli' })
    assert.isTrue(await eventually(async () => (await chat(made.body.key)).status === 200))
    const run = async (command: any, args: string[]) => {
      const instance = await ace.create(command, args)
      ace.ui.switchMode('raw')
      await instance.exec()
      instance.assertSucceeded()
    }
    await run(KeyBlock, ['--key', String(made.body.id)])
    assert.isTrue(await eventually(async () => (await chat(made.body.key)).status === 401))
    assert.equal((await audit('key.block', made.body.id)).source, 'cli')
    await run(KeyBlock, ['--key', String(made.body.id), '--unblock'])
    assert.isTrue(await eventually(async () => (await chat(made.body.key)).status === 200))
    assert.equal((await audit('key.unblock', made.body.id)).source, 'cli')
    const lines: string[] = []
    const original = console.log
    console.log = (...args: any[]) => lines.push(args.join(' '))
    try {
      await run(KeyRegenerate, ['--key', made.body.key])
    } finally {
      console.log = original
    }
    const fresh = lines.at(-1)!
    assert.match(fresh, /^sk-gw-/)
    assert.isTrue(await eventually(async () => (await chat(made.body.key)).status === 401))
    assert.equal((await chat(fresh)).status, 200)
    assert.equal((await audit('key.regenerate', made.body.id)).source, 'cli')
  })
})
