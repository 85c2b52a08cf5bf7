import { test } from '@japa/runner'
import { spawnSync } from 'node:child_process'
import db from '@adonisjs/lucid/services/db'
import encryption from '@adonisjs/core/services/encryption'
import { AES256GCM } from '@adonisjs/core/encryption/drivers/aes_256_gcm'
import { putSetting } from '#services/app_settings'
import { smtpSettings, storedSmtp } from '#services/mail/smtp_settings'
import { storedSso } from '#services/sso/sso_panel_settings'
import ace from '@adonisjs/core/services/ace'
import KeyCreate from '#commands/key_create'
import KeyUpdate from '#commands/key_update'
import { createUser } from '#actions/create_user'
import { createApiKey } from '#actions/issue_api_key'
import { adminApi, baseUrl, gateway, post, usageRows, refreshCaches, resetDatabase, seedChannel, seedPrice, seedUser, startMock } from '#tests/helpers'
import { createOrganization } from '#actions/organizations'
import { createTeam, setKeyTeam, updateTeam } from '#actions/teams'
import { DateTime } from 'luxon'
import { setUserWebhook } from '#services/user_webhook'
import { PanelClient, textOf } from '#tests/panel_client'
import { PageClient } from '#tests/page_client'

/**
 * The leftovers of this pass's merges: secrets rotation over the panel's
 * secrets, SSO link-by-email and admins, soft budgets in every place a key is
 * set, the team form's organization, the billing page's words, LiteLLM's spend
 * per organization.
 */

test.group('Leftovers (26): secrets:reencrypt covers the panel secrets', (group) => {
  group.setup(() => resetDatabase())

  test('the SMTP password and the OIDC / GitHub client secrets saved in the panel are saved again with APP_KEY (else unreadable once the old key went)', async ({ assert }) => {
    const oldKey = 'the-old-app-key-the-old-app-key-26'
    const old = new AES256GCM({ id: 'gcm', key: oldKey })
    await putSetting('smtp', { host: 'smtp.example.com', port: 587, secure: false, user: 'mailer', passwordEncrypted: old.encrypt('smtp-pass-26'), from: 'noreply@example.com' })
    await putSetting('sso', {
      oidc: { enabled: true, issuer: 'https://login.example.com', clientId: 'gw', secretEncrypted: old.encrypt('oidc-secret-26'), scopes: 'openid email', label: '', linkByEmail: false },
      github: { enabled: true, clientId: 'gh', secretEncrypted: new AES256GCM({ id: 'gcm', key: 'a-key-nobody-has-a-key-nobody-has-26' }).encrypt('gh-lost-26') },
    })
    const run = spawnSync(process.execPath, ['ace.js', 'secrets:reencrypt'], {
      cwd: process.cwd(),
      env: { ...process.env, APP_KEY_PREVIOUS: oldKey },
      encoding: 'utf8',
      timeout: 60_000,
    })
    const out = run.stdout + run.stderr
    assert.include(out, '2 panel secret(s) (SMTP password, SSO client secrets)')
    assert.equal(run.status, 1, 'the GitHub secret no key reads: said, exit 1')
    assert.include(out, '1 panel secret(s) (github)')
    assert.include(out, 'Settings > E-mail / Sign-in')

    // Read with this process's APP_KEY alone (no previous keys).
    const smtp = await storedSmtp()
    assert.equal(encryption.decrypt(smtp!.passwordEncrypted!), 'smtp-pass-26')
    assert.equal((await smtpSettings())!.password, 'smtp-pass-26')
    assert.equal(smtp!.host, 'smtp.example.com', 'the rest of the setting kept')
    const sso = await storedSso()
    assert.equal(encryption.decrypt(sso.oidc!.secretEncrypted!), 'oidc-secret-26')
    assert.equal(sso.oidc!.issuer, 'https://login.example.com')
    assert.isNull(encryption.decrypt(sso.github!.secretEncrypted!), 'the unreadable one left as it was')
    assert.equal(sso.github!.clientId, 'gh')

    const audit = await db.from('audit_log').where('action', 'secrets.reencrypt').orderBy('id', 'desc').first()
    assert.include(audit.summary, '2 panel secret(s)')
    assert.include(audit.summary, '1 panel secret(s) (github)')
    for (const secret of ['smtp-pass-26', 'oidc-secret-26', 'gh-lost-26']) {
      assert.notInclude(audit.summary, secret)
      assert.notInclude(out, secret)
    }
  }).timeout(120_000)
})

async function runAce(command: typeof KeyCreate | typeof KeyUpdate, args: string[]) {
  const instance = await ace.create(command, args)
  ace.ui.switchMode('raw')
  await instance.exec()
  return instance
}

/** The text of the error shown beside a panel field (null: none). */
function besideField(html: string, field: string) {
  const match = html.match(new RegExp(`id="f-${field}-error">([^<]*)<`))
  return match ? match[1] : null
}

const HOSTILE_SOFT_BUDGETS: unknown[] = ['5\u0000', '1e3', '-1', -1, '0.1234567', 0.1234567, 'abc', true]

test.group('Leftovers (26): a key\'s soft budget everywhere a key is set', (group) => {
  let adminKey = ''
  group.setup(async () => {
    await resetDatabase()
    await createUser({ email: 'ops26@test.local', password: 'admin-password', role: 'admin' })
    await createUser({ email: 'owner26@test.local', password: 'password123', role: 'user' })
    adminKey = (await createApiKey({ userRef: 'ops26@test.local', name: 'ops', manage: true })).key
  })

  test('management API: soft_budget answered, set on POST and PATCH (number or text, null clears); hostile values a 400 naming soft_budget, the key unchanged', async ({ assert }) => {
    const made = await adminApi('POST', '/keys', adminKey, { user: 'owner26@test.local', name: 'soft', soft_budget: 12.5 })
    assert.equal(made.status, 201, JSON.stringify(made.body))
    assert.equal(made.body.soft_budget, '12.5')
    const id = made.body.id
    assert.equal((await adminApi('GET', `/keys/${id}`, adminKey)).body.soft_budget, '12.5')
    const patched = await adminApi('PATCH', `/keys/${id}`, adminKey, { soft_budget: '20.000001' })
    assert.equal(patched.status, 200, JSON.stringify(patched.body))
    assert.equal(patched.body.soft_budget, '20.000001')
    assert.equal((await adminApi('PATCH', `/keys/${id}`, adminKey, { name: 'renamed' })).body.soft_budget, '20.000001', 'left out: unchanged')
    const audit = await db.from('audit_log').where('action', 'key.update').where('subject_id', id).orderBy('id').first()
    assert.include(audit.summary, 'softBudget: 12.5 → 20.000001')

    for (const value of HOSTILE_SOFT_BUDGETS) {
      const refused = await adminApi('PATCH', `/keys/${id}`, adminKey, { soft_budget: value })
      assert.equal(refused.status, 400, `PATCH ${JSON.stringify(value)}`)
      assert.equal(refused.body.error.param, 'soft_budget', `PATCH ${JSON.stringify(value)}`)
      assert.include(refused.body.error.message, 'soft_budget')
      const created = await adminApi('POST', '/keys', adminKey, { user: 'owner26@test.local', name: 'hostile', soft_budget: value })
      assert.equal(created.status, 400, `POST ${JSON.stringify(value)}`)
      assert.equal(created.body.error.param, 'soft_budget')
    }
    assert.equal((await adminApi('GET', `/keys/${id}`, adminKey)).body.soft_budget, '20.000001')
    assert.lengthOf(await db.from('api_keys').where('name', 'hostile'), 0, 'no key made with a hostile soft budget')
    assert.isNull((await adminApi('PATCH', `/keys/${id}`, adminKey, { soft_budget: null })).body.soft_budget)
  })

  test('panel: the key forms take a soft budget beside the spend cap (show page says it); hostile values are refused beside the field', async ({ assert }) => {
    const panel = new PanelClient()
    await panel.login('ops26@test.local', 'admin-password')
    const form = await panel.get('/admin/keys/new')
    assert.match(form.html, /name="spendLimit"[\s\S]*name="softBudget"/)
    const made = await panel.post('/admin/keys', { user: 'owner26@test.local', name: 'panel-soft', softBudget: '7.5' })
    assert.equal(made.status, 302)
    const key = await db.from('api_keys').where('name', 'panel-soft').firstOrFail()
    assert.equal(Number(key.soft_budget), 7.5)
    const shown = await panel.get(`/admin/keys/${key.id}`)
    assert.match(shown.html, /data-testid="soft-budget">\$7\.50? \(alerts once crossed, never refuses\)/)

    const edit = await panel.get(`/admin/keys/${key.id}/edit`)
    assert.match(edit.html, /name="softBudget"[^>]*value="7.5"/)
    for (const value of ['5\u0000', '1e3', '-1', '0.1234567']) {
      await panel.get(`/admin/keys/${key.id}/edit`)
      const page = await panel.follow(await panel.post(`/admin/keys/${key.id}`, { name: 'panel-soft', softBudget: value }))
      assert.equal(besideField(page.html, 'softBudget'), 'Soft budget must be an amount in USD such as 5 or 0.50, with at most 6 decimals.', JSON.stringify(value))
      await panel.get('/admin/keys/new')
      const create = await panel.follow(await panel.post('/admin/keys', { user: 'owner26@test.local', name: 'panel-hostile', softBudget: value }))
      assert.equal(besideField(create.html, 'softBudget'), 'Soft budget must be an amount in USD such as 5 or 0.50, with at most 6 decimals.', JSON.stringify(value))
    }
    assert.equal(Number((await db.from('api_keys').where('id', key.id).firstOrFail()).soft_budget), 7.5)
    assert.lengthOf(await db.from('api_keys').where('name', 'panel-hostile'), 0)

    await panel.get(`/admin/keys/${key.id}/edit`)
    assert.equal((await panel.post(`/admin/keys/${key.id}`, { name: 'panel-soft', softBudget: '9' })).status, 302)
    assert.equal(Number((await db.from('api_keys').where('id', key.id).firstOrFail()).soft_budget), 9)
    await panel.get(`/admin/keys/${key.id}/edit`)
    await panel.post(`/admin/keys/${key.id}`, { name: 'panel-soft', softBudget: '' })
    assert.isNull((await db.from('api_keys').where('id', key.id).firstOrFail()).soft_budget, 'an empty field clears it')
  })

  test('portal: the key page shows the soft budget read-only; a soft_budget posted by the owner changes nothing', async ({ assert }) => {
    const { apiKey } = await createApiKey({ userRef: 'owner26@test.local', name: 'portal-soft', softBudget: '3.25' })
    const owner = new PageClient()
    await owner.login('owner26@test.local')
    const page = await owner.get(`/dashboard/keys/${apiKey.id}/edit`)
    assert.equal(page.status, 200)
    assert.include(page.body, 'data-soft-budget')
    assert.include(page.body, 'Soft budget (set by an administrator): $3.25.')
    assert.notInclude(page.body, 'name="soft_budget"')
    assert.notInclude(page.body, 'name="softBudget"')
    await owner.post(`/dashboard/keys/${apiKey.id}`, { name: 'portal-soft', soft_budget: '1000', softBudget: '1000' })
    assert.equal(Number((await db.from('api_keys').where('id', apiKey.id).firstOrFail()).soft_budget), 3.25)
  })

  test('key:create and key:update take --soft-budget ("none" clears); hostile values refused naming the flag', async ({ assert }) => {
    const created = await runAce(KeyCreate, ['--user', 'owner26@test.local', '--name', 'cli-soft', '--soft-budget', '4.5'])
    created.assertSucceeded()
    const key = await db.from('api_keys').where('name', 'cli-soft').firstOrFail()
    assert.equal(Number(key.soft_budget), 4.5)
    ;(await runAce(KeyUpdate, ['--key', String(key.id), '--soft-budget', '6'])).assertSucceeded()
    assert.equal(Number((await db.from('api_keys').where('id', key.id).firstOrFail()).soft_budget), 6)
    ;(await runAce(KeyUpdate, ['--key', String(key.id), '--name', 'cli-soft-2'])).assertSucceeded()
    assert.equal(Number((await db.from('api_keys').where('id', key.id).firstOrFail()).soft_budget), 6, 'left out: unchanged')
    for (const value of ['1e3', '-1', '0.1234567', '5\u0000']) {
      const refused = await runAce(KeyUpdate, ['--key', String(key.id), '--soft-budget', value])
      refused.assertFailed()
      refused.assertLog('[ red(error) ] --soft-budget: Soft budget must be an amount in USD such as 5 or 0.50, with at most 6 decimals.')
      const refusedCreate = await runAce(KeyCreate, ['--user', 'owner26@test.local', '--name', 'cli-hostile', '--soft-budget', value])
      refusedCreate.assertFailed()
    }
    assert.lengthOf(await db.from('api_keys').where('name', 'cli-hostile'), 0)
    ;(await runAce(KeyUpdate, ['--key', String(key.id), '--soft-budget', 'none'])).assertSucceeded()
    assert.isNull((await db.from('api_keys').where('id', key.id).firstOrFail()).soft_budget)
  })
})

test.group('Leftovers (26): the team form\'s organization', (group) => {
  group.setup(() => resetDatabase())

  test('a tampered organization value (0x10, abc) is an error beside the Organization select, the form as typed; the management API still answers 404', async ({ assert }) => {
    await createUser({ email: 'teams26@test.local', password: 'admin-password', role: 'admin' })
    const adminKey = (await createApiKey({ userRef: 'teams26@test.local', name: 'ops', manage: true })).key
    const panel = new PanelClient()
    await panel.login('teams26@test.local', 'admin-password')
    for (const value of ['0x10', 'abc']) {
      await panel.get('/admin/teams/new')
      const page = await panel.follow(await panel.post('/admin/teams', { alias: `tampered-${value}`, organization: value }))
      assert.equal(besideField(page.html, 'organization'), `No organization &quot;${value}&quot;`, value)
      assert.include(page.html, `value="tampered-${value}"`, 'the form as typed')
    }
    assert.lengthOf(await db.from('teams'), 0)

    await panel.get('/admin/teams/new')
    await panel.post('/admin/teams', { alias: 'kept', organization: '' })
    const team = await db.from('teams').where('alias', 'kept').firstOrFail()
    await panel.get(`/admin/teams/${team.id}/edit`)
    const edit = await panel.follow(await panel.post(`/admin/teams/${team.id}`, { alias: 'kept', organization: '0x10' }))
    assert.equal(besideField(edit.html, 'organization'), 'No organization &quot;0x10&quot;')
    assert.isNull((await db.from('teams').where('id', team.id).firstOrFail()).organization_id)

    const api = await adminApi('PATCH', `/teams/${team.id}`, adminKey, { organization_id: 'abc' })
    assert.equal(api.status, 404)
  })
})

test.group('Leftovers (26): the Billing page without e-mail', (group) => {
  group.setup(() => resetDatabase())

  test('no e-mail set up but an alert webhook: the low-balance form says the notice goes to the webhook only (it said "E-mail me...")', async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    await setUserWebhook(user.userId, 'https://hooks.example/26')
    const client = new PanelClient()
    assert.equal((await client.login(user.email, 'password123')).status, 302)
    const page = await client.get('/dashboard/billing')
    const section = textOf(page.html.slice(page.html.indexOf('data-low-balance'), page.html.indexOf('data-alert-webhook')))
    assert.include(section, 'Low-balance notice')
    assert.include(section, 'Post to my alert webhook when my balance falls below this amount (e-mail is not set up on this gateway: webhook only)')
    assert.include(section, 'One webhook post (user.low_balance)')
    assert.notInclude(section, 'E-mail me')
    assert.notInclude(section, 'One e-mail')
    const saved = await client.follow(await client.post('/dashboard/billing/low-balance', { low_balance_on: ['0', '1'], low_balance: '5' }))
    assert.include(textOf(saved.html), 'Saved: your alert webhook is told when your balance falls below this amount')
    assert.notInclude(textOf(saved.html), 'you will get an e-mail')
  })
})

test.group('Leftovers (26): LiteLLM\'s /organization/daily/activity', (group) => {
  let adminKey = ''
  let stopMock: () => Promise<void>
  group.setup(async () => {
    await resetDatabase()
    const mock = await startMock()
    stopMock = () => mock.stop()
    await seedChannel({ name: 'mock', baseUrl: mock.url, models: ['*'] })
    // 12 prompt and 5 completion tokens a call (the mock's usage): $0.012 + $0.010 = $0.022.
    await seedPrice('org-model', '1000', '2000')
    await createUser({ email: 'ops-act@test.local', password: 'admin-password', role: 'admin' })
    adminKey = (await createApiKey({ userRef: 'ops-act@test.local', name: 'master', manage: true })).key
    return () => stopMock()
  })

  async function activity(query: string) {
    const response = await fetch(`${baseUrl()}/organization/daily/activity${query}`, { headers: { authorization: `Bearer ${adminKey}` } })
    return { status: response.status, body: (await response.json()) as any }
  }

  async function chat(key: string) {
    const response = await post('/v1/chat/completions', { model: 'org-model', messages: [{ role: 'user', content: 'hi' }] }, { authorization: `Bearer ${key}` })
    return response.status
  }

  test('spend per UTC day and organization, by model and entity, from each row\'s own organization (finished days from the rollups, today live); filter, pages, hostile input', async ({ assert }) => {
    const acme = await createOrganization({ alias: 'Acme' })
    const globex = await createOrganization({ alias: 'Globex' })
    const team = await createTeam({ alias: 'acme-prod', organization: acme.id })
    const user = await seedUser({ balance: '10' })
    await setKeyTeam(String(user.keyId), team.id)
    await refreshCaches()
    assert.equal(await chat(user.key), 200)
    assert.equal(await chat(user.key), 200)
    // One of them yesterday: that day is read from the rollup.
    const yesterday = DateTime.utc().startOf('day').minus({ days: 1 })
    const [first] = await usageRows(user.userId)
    await db.from('usage_records').where('id', first.id).update({ created_at: yesterday.plus({ hours: 12 }).toJSDate() })
    // The team moves: what it spent stays with Acme, Globex counts from the move.
    await updateTeam(team.id, { organization: globex.id })
    await refreshCaches()
    const { catalog } = await gateway()
    for (let i = 0; i < 40 && catalog.teams.get(team.id)?.org?.id !== globex.id; i++) await new Promise((r) => setTimeout(r, 50))
    assert.equal(await chat(user.key), 200)
    assert.lengthOf(await usageRows(user.userId), 3)

    const today = DateTime.utc().toISODate()!
    const range = `?start_date=${yesterday.toISODate()}&end_date=${today}`
    const answer = await activity(range)
    assert.equal(answer.status, 200, JSON.stringify(answer.body))
    const { results, metadata } = answer.body
    assert.deepEqual(results.map((r: any) => r.date), [yesterday.toISODate(), today])
    assert.deepEqual(Object.keys(results[0].breakdown.entities), [String(acme.id)], 'yesterday: Acme only (rollup)')
    assert.deepEqual(results[0].breakdown.entities[String(acme.id)].metadata, { organization_alias: 'Acme' })
    assert.closeTo(results[0].metrics.spend, 0.022, 1e-12)
    assert.deepInclude(results[0].metrics, { prompt_tokens: 12, completion_tokens: 5, total_tokens: 17, api_requests: 1, successful_requests: 1, failed_requests: 0 })
    assert.closeTo(results[0].breakdown.models['org-model'].metrics.spend, 0.022, 1e-12)
    assert.sameMembers(Object.keys(results[1].breakdown.entities), [String(acme.id), String(globex.id)], 'today: one row each (live)')
    assert.equal(results[1].breakdown.entities[String(globex.id)].metrics.api_requests, 1)
    assert.closeTo(metadata.total_spend, 0.066, 1e-12)
    assert.deepInclude(metadata, { total_api_requests: 3, total_tokens: 51, page: 1, total_pages: 1, has_more: false })
    const rolled = await db.from('usage_daily').where('dim', 'org_model').where('day', yesterday.toISODate()!)
    assert.deepEqual(rolled.map((r) => r.key), [`${acme.id} org-model`])

    const onlyGlobex = await activity(`${range}&organization_ids=${globex.id}`)
    assert.deepEqual(onlyGlobex.body.results.map((r: any) => r.date), [today])
    assert.closeTo(onlyGlobex.body.metadata.total_spend, 0.022, 1e-12)
    const paged = await activity(`${range}&page_size=1&page=2`)
    assert.deepEqual(paged.body.results.map((r: any) => r.date), [today])
    assert.deepInclude(paged.body.metadata, { page: 2, total_pages: 2, has_more: false })

    for (const [query, param] of [
      ['?organization_ids=0x10', 'organization_ids'],
      ['?organization_ids=abc', 'organization_ids'],
      ['?organization_ids=1,%00', 'organization_ids'],
      ['?page_size=0', 'page_size'],
      ['?page_size=1e3', 'page_size'],
      ['?start_date=2026-02-30', 'start_date'],
    ]) {
      const refused = await activity(query)
      assert.equal(refused.status, 400, query)
      assert.equal(refused.body.error.param, param, query)
    }
    const user2 = await seedUser()
    const forbidden = await fetch(`${baseUrl()}/organization/daily/activity`, { headers: { authorization: `Bearer ${user2.key}` } })
    assert.equal(forbidden.status, 403)
  }).timeout(60_000)
})
