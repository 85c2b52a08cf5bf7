import { test } from '@japa/runner'
import { spawnSync } from 'node:child_process'
import db from '@adonisjs/lucid/services/db'
import encryption from '@adonisjs/core/services/encryption'
import { AES256GCM } from '@adonisjs/core/encryption/drivers/aes_256_gcm'
import limiter from '@adonisjs/limiter/services/main'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { claimBudgetAlerts, KEY_BUDGET_NOTICES_PER_HOUR } from '#services/budget_alerts'
import { setUserWebhook, userWebhooksIdle } from '#services/user_webhook'
import { claimLowBalanceNotices, LOW_BALANCE_MAILS_PER_HOUR } from '#services/mail/low_balance_notice'
import { toFile } from 'openai'
import { createOrganization } from '#actions/organizations'
import { createTeam, setKeyTeam } from '#actions/teams'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { toPico } from '#gateway/metering/money'
import { baseUrl, gateway, openai, refreshCaches, resetDatabase, seedChannel, seedPrice, seedUser, startMock } from '#tests/helpers'
import { createUser } from '#actions/create_user'
import { createApiKey } from '#actions/issue_api_key'
import { PanelClient, textOf } from '#tests/panel_client'

/**
 * Hostile input, careless operators and racing clients against this pass's
 * merges: organizations (budget, models, limits over their teams' keys) and
 * budget alerts (soft budgets, spend-cap warnings, the user's webhook).
 */

function jsonl(ids: string[]): Buffer {
  const lines = ids.map((id) =>
    JSON.stringify({ custom_id: id, method: 'POST', url: '/v1/chat/completions', body: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: id }], max_tokens: 50 } })
  )
  return Buffer.from(`${lines.join('\n')}\n`, 'utf8')
}

test.group('Hostile (s30): organizations and batches', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'openai', provider: 'openai', baseUrl: mock.url, models: ['gpt-4o-mini'] })
    await seedPrice('gpt-4o-mini', '2', '8')
    await refreshCaches()
    // The boot's sync may have held a batch of an earlier run's rows, which the reset deleted (and whose ids it restarts):
    // one sync releases it, the next forgets the release, so a new batch with that id is held.
    const gw = await gateway()
    await gw.batches.holds.sync()
    await new Promise((r) => setTimeout(r, 2))
    await gw.batches.holds.sync()
    return () => mock.stop()
  })

  test("batches of an organization's teams hold on its budget while they run and their bills count in its spend", async ({ assert }) => {
    const gw = await gateway()
    const one = await seedUser({ balance: '10' })
    const two = await seedUser({ balance: '10' })
    const org = await createOrganization({ alias: 's30-org', maxBudget: '0.0015' })
    const teamOne = await createTeam({ alias: 's30-team-one', organization: org.id })
    const teamTwo = await createTeam({ alias: 's30-team-two', organization: org.id })
    await setKeyTeam(String(one.keyId), teamOne.id)
    await setKeyTeam(String(two.keyId), teamTwo.id)
    await refreshCaches()
    const create = async (key: string, ids: string[]) => {
      const client = openai(key)
      const file = await client.files.create({ file: await toFile(jsonl(ids), 'requests.jsonl'), purpose: 'batch' })
      return client.batches
        .create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h', metadata: { mock_polls: '1' } })
        .then((batch) => ({ batch, error: null as any }), (error) => ({ batch: null, error }))
    }
    // Each hold (2 lines' estimate) is within what the organization has left; the two together are not.
    const first = await create(one.key, ['a-0', 'a-1'])
    assert.isNull(first.error, String(first.error))
    const organization = gw.catalog.teams.organization(Number(org.id))!
    const hold = organization.heldPico
    assert.isAbove(Number(hold), 0, "the batch holds on the organization's budget")
    assert.isBelow(Number(2n * hold), Number(toPico('0.0015')) + 1, 'the test needs two holds within the budget')
    // A third batch past what the budget has left with the first's hold is refused, through the other team's key.
    const second = await create(two.key, ['b-0', 'b-1'])
    assert.isNull(second.error, String(second.error))
    const third = await create(two.key, ['c-0', 'c-1'])
    assert.equal(third.error?.status, 402, 'refused: the other batches hold what the organization has left')
    assert.include(third.error?.error?.message, "organization 's30-org'")

    // Run to their end: each bill counts in the organization's spend (once), and its hold is released.
    for (let i = 0; i < 3; i++) {
      await openai(one.key).batches.retrieve(first.batch!.id)
      await openai(two.key).batches.retrieve(second.batch!.id)
    }
    await gw.batches.sweep()
    await gw.meter.drain()
    const rows = await db.from('usage_records').whereIn('user_id', [one.userId, two.userId]).where('endpoint', 'batch')
    assert.lengthOf(rows, 2)
    for (const row of rows) assert.equal(String(row.organization_id), String(org.id))
    const billed = rows.reduce((sum, row) => sum + toPico(String(row.cost)), 0n)
    assert.isAbove(Number(billed), 0)
    const stored = await db.from('organizations').where('id', org.id).first()
    assert.equal(toPico(String(stored.spent)), billed, "the bills are in the organization's spend")
    assert.equal(organization.heldPico, 0n, 'released once')
    assert.equal(organization.spentPico, billed)
    await gw.catalog.teams.reload()
    assert.equal(gw.catalog.teams.organization(Number(org.id))!.spentPico, billed, 'not counted twice after a reload')
  })
})

test.group('Hostile (s30): alert webhooks', (group) => {
  const allowed = process.env.USER_WEBHOOK_ALLOW_PRIVATE
  group.setup(async () => {
    await resetDatabase()
    return () => {
      // Assigning undefined would store the text "undefined" (later child gateways refuse it at boot).
      if (allowed === undefined) delete process.env.USER_WEBHOOK_ALLOW_PRIVATE
      else process.env.USER_WEBHOOK_ALLOW_PRIVATE = allowed
    }
  })

  test("a user re-arming their key's warning again and again gets at most the hourly bound of notices, across instances (the bound is in Postgres)", async ({ assert }) => {
    process.env.USER_WEBHOOK_ALLOW_PRIVATE = 'true'
    const posts: string[] = []
    const server = createServer(async (req, res) => {
      let raw = ''
      for await (const chunk of req) raw += chunk
      posts.push(raw)
      res.writeHead(200).end('ok')
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    try {
      const user = await seedUser({ balance: '5', key: { spendLimit: '1' } })
      await db.from('api_keys').where('id', user.keyId).update({ spent: '0.9' })
      await setUserWebhook(user.userId, `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`)
      // What editing the cap does each time (its trigger deletes the marks), then a batch's claim: one notice each.
      const rearmAndClaim = async () => {
        await db.from('budget_alert_marks').where({ kind: 'key', subject_id: user.keyId }).delete()
        await claimBudgetAlerts([{ kind: 'key', id: user.keyId, threshold: 80 }], null)
        await userWebhooksIdle()
      }
      for (let i = 0; i < KEY_BUDGET_NOTICES_PER_HOUR; i++) await rearmAndClaim()
      assert.lengthOf(posts, KEY_BUDGET_NOTICES_PER_HOUR)
      // Another instance (or this one restarted) has nothing in its memory: the bound must hold there too.
      await limiter.clear(['memory'])
      await rearmAndClaim()
      await rearmAndClaim()
      assert.lengthOf(posts, KEY_BUDGET_NOTICES_PER_HOUR, 'no notice past the hourly bound, whichever instance claims')

      // The low-balance notice, re-armed by a threshold saved a cent under the balance: its bound the same way.
      posts.length = 0
      await db.from('users').where('id', user.userId).update({ balance: '4', low_balance_threshold: '5' })
      const dip = async () => {
        await db.from('users').where('id', user.userId).update({ low_balance_notified: false })
        await claimLowBalanceNotices([user.userId])
        await userWebhooksIdle()
      }
      for (let i = 0; i < LOW_BALANCE_MAILS_PER_HOUR; i++) await dip()
      assert.lengthOf(posts, LOW_BALANCE_MAILS_PER_HOUR)
      await limiter.clear(['memory'])
      await dip()
      assert.lengthOf(posts, LOW_BALANCE_MAILS_PER_HOUR, 'no low-balance notice past its bound on another instance')
    } finally {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  })

  test("secrets:reencrypt after an APP_KEY rotation saves the users' alert webhook secrets with APP_KEY too (else every post failed once the old key went)", async ({ assert }) => {
    const oldKey = 'the-old-app-key-the-old-app-key-30'
    const user = await seedUser()
    const lost = await seedUser()
    await db.from('users').where('id', user.userId).update({ alert_webhook_url: 'https://hooks.example/a', alert_webhook_secret: new AES256GCM({ id: 'gcm', key: oldKey }).encrypt('whsec_s30') })
    await db.from('users').where('id', lost.userId).update({
      alert_webhook_url: 'https://hooks.example/b',
      alert_webhook_secret: new AES256GCM({ id: 'gcm', key: 'a-key-nobody-has-a-key-nobody-has-30' }).encrypt('whsec_lost'),
    })
    const run = spawnSync(process.execPath, ['ace.js', 'secrets:reencrypt'], {
      cwd: process.cwd(),
      env: { ...process.env, APP_KEY_PREVIOUS: oldKey },
      encoding: 'utf8',
      timeout: 60_000,
    })
    const out = run.stdout + run.stderr
    assert.include(out, '1 alert webhook secret(s)')
    assert.equal(run.status, 1, 'one secret no key reads: said, exit 1')
    assert.include(out, 'save the webhook URL again')
    const saved = await db.from('users').where('id', user.userId).first()
    assert.equal(encryption.decrypt(saved.alert_webhook_secret), 'whsec_s30', 'readable with APP_KEY alone now')
    const audit = await db.from('audit_log').where('action', 'secrets.reencrypt').orderBy('id', 'desc').first()
    assert.include(audit.summary, '1 alert webhook secret(s)')
    assert.notInclude(audit.summary, 'whsec_', 'the secret itself is in no audit line')
    assert.notInclude(out, 'whsec_')
  }).timeout(120_000)
})

test.group('Hostile (s30): organization forms', (group) => {
  group.setup(() => resetDatabase())

  test('a model glob with a control character: the error beside Models says so (it said "0 has an invalid format"), in the panel and on LiteLLM\'s path', async ({ assert }) => {
    await createUser({ email: 'panel@s30.local', password: 'admin-password', role: 'admin' })
    const client = new PanelClient()
    await client.login('panel@s30.local', 'admin-password')
    await client.get('/admin/organizations/new')
    const page = await client.follow(await client.post('/admin/organizations', { alias: 'glob-org', models: 'gpt-*, bad\u0000glob' }))
    const beside = page.html.match(/id="f-models-error">([^<]*)</)
    assert.equal(beside && textOf(beside[1]).trim(), 'A model glob cannot hold control characters.')
    assert.lengthOf(await db.from('organizations'), 0)

    const key = (await createApiKey({ userRef: 'panel@s30.local', name: 'm', manage: true })).key
    const answer = await fetch(`${baseUrl()}/organization/new`, {
      method: 'POST',
      headers: { 'authorization': `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ organization_alias: 'glob-org', models: ['ok-*', 'tab\tglob'] }),
    })
    const body: any = await answer.json()
    assert.equal(answer.status, 400)
    assert.equal(body.error.param, 'models.1')
    assert.include(body.error.message, 'A model glob cannot hold control characters.')
  })
})
