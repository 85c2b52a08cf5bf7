import http from 'node:http'
import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import { createUser } from '#actions/create_user'
import { createPlan } from '#actions/create_plan'
import { createApiKey } from '#actions/issue_api_key'
import { postLedgerEntry } from '#actions/post_ledger_entry'
import { toPico } from '#gateway/metering/money'
import { baseUrl, gateway, post, refreshCaches, resetDatabase, seedChannel, seedPrice, seedUser, startMock, usageRows } from '#tests/helpers'
import { PanelClient, textOf } from '#tests/panel_client'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'

/**
 * Leftovers of the last pass: the token counter's in-flight accounting,
 * whole numbers in the portal and the panel's filters, a plan the cache has
 * not loaded yet, /api/status's model names, and stored-response ids no
 * response can have.
 */

/** A POST whose body the test writes (and may never finish). */
function rawPost(path: string, headers: Record<string, string>, send: (req: http.ClientRequest) => void): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const url = new URL(`${baseUrl()}${path}`)
    const req = http.request({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk) => (text += chunk))
      res.on('end', () => {
        let body: any = text
        try {
          body = JSON.parse(text)
        } catch {}
        resolve({ status: res.statusCode!, body })
      })
    })
    req.on('error', (error: any) => (error.code === 'EPIPE' || error.code === 'ECONNRESET' ? undefined : reject(error)))
    send(req)
  })
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

test.group('Leftovers (s25): /utils/token_counter in flight', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'counted', provider: 'openai', baseUrl: mock.url, models: ['gpt-4o-mini'] })
    await refreshCaches()
    return () => mock.stop()
  })

  test("held to the gateway's in-flight bound (503 overloaded, LiteLLM's shape) and to the key's max_parallel; its place freed when answered", async ({ assert }) => {
    const service = (await gateway()).service
    for (let i = 0; i < 200 && service.inFlight > 0; i++) await sleep(10)
    const base = service.inFlight
    const user = await seedUser({ keyModels: ['gpt-4o-mini'], key: { maxParallel: 1 } })
    const auth = { authorization: `Bearer ${user.key}` }
    const body = { model: 'gpt-4o-mini', prompt: 'Hello there' }

    const counted = await post('/utils/token_counter', body, auth)
    assert.equal(counted.status, 200)
    for (let i = 0; i < 50 && service.inFlight > base; i++) await sleep(10)
    assert.equal(service.inFlight, base, 'the answered count gave its place back')

    const saved = service.maxInFlight
    service.maxInFlight = base
    try {
      const refused = await post('/utils/token_counter', body, auth)
      assert.equal(refused.status, 503, await refused.clone().text())
      const error = ((await refused.json()) as any).error
      assert.equal(error.code, '503', "LiteLLM's shape: the status as text")
      assert.include(error.message, 'in flight')
    } finally {
      service.maxInFlight = saved
    }

    // The key may run one call at a time: a count still uploading its body holds that place.
    let stalled: http.ClientRequest | undefined
    void rawPost('/utils/token_counter', { ...auth, 'content-type': 'application/json', 'content-length': '1000' }, (req) => {
      req.write('{')
      stalled = req
    }).catch(() => {})
    try {
      await sleep(150)
      const second = await post('/utils/token_counter', body, auth)
      assert.equal(second.status, 429)
    } finally {
      stalled?.destroy()
    }
  })
})

/** Written as a query string, each was a number to Vine's number() (Number()): 16, 1000, 5. */
const LOOSE_DIGITS = ['0x10', '1e3', ' 5']
/** The same in a form (whose fields the body parser trims: " 5" is 5 there, as typed into a field) */
const LOOSE_FORM_DIGITS = ['0x10', '1e3', '+5', '0b1']

test.group('Leftovers (s25): whole numbers in the portal and the panel', (group) => {
  group.setup(async () => {
    await resetDatabase()
  })

  test("the portal's key form refuses 0x10, 1e3, +5 or 0b1 as days or team; an empty field is no expiry", async ({ assert }) => {
    const user = await seedUser()
    const portal = new PanelClient()
    await portal.login(user.email, 'password123')
    const keys = async () => Number((await db.from('api_keys').where('user_id', user.userId).count('* as n'))[0].n)
    const before = await keys()
    for (const value of LOOSE_FORM_DIGITS) {
      for (const field of ['expires_in_days', 'team']) {
        await portal.get('/dashboard/keys')
        const answer = await portal.post('/dashboard/keys', { name: `loose-${field}`, [field]: value })
        assert.equal(answer.status, 302, `${field}=${JSON.stringify(value)}`)
        assert.equal(await keys(), before, `${field}=${JSON.stringify(value)} made a key`)
      }
    }
    await portal.get('/dashboard/keys')
    const made = await portal.post('/dashboard/keys', { name: 'no-expiry', expires_in_days: '', team: '' })
    assert.equal(made.status, 200, 'the page with the new key')
    const row = await db.from('api_keys').where('user_id', user.userId).where('name', 'no-expiry').first()
    assert.isNull(row.expires_at)
    assert.isNull(row.team_id)
  })

  test('the portal usage filters refuse ?key=0x10 and ?page=1e3 (422); an empty ?key= or ?page= is no filter', async ({ assert }) => {
    const user = await seedUser()
    const portal = new PanelClient()
    await portal.login(user.email, 'password123')
    for (const value of LOOSE_DIGITS) {
      for (const field of ['key', 'page']) {
        const path = `/dashboard/usage?${field}=${encodeURIComponent(value)}`
        const page = await portal.get(path)
        assert.equal(page.status, 422, path)
        assert.equal((await portal.get(path.replace('/usage?', '/usage.csv?'))).status, 422, `${path} (CSV)`)
      }
    }
    assert.equal((await portal.get('/dashboard/usage?key=&page=&model=&status=')).status, 200)
    assert.equal((await portal.get(`/dashboard/usage?key=${user.keyId}&page=1`)).status, 200)
  })

  test("the panel's batch list refuses ?before=0x10 (422); an empty ?before= is the first page; a user's plan given loosely is refused, an empty one is none", async ({ assert }) => {
    await createUser({ email: 'digits25-admin@test.local', password: 'admin-password', role: 'admin' })
    const plan = await createPlan({ name: 'digits25-plan' })
    const panel = new PanelClient()
    await panel.login('digits25-admin@test.local', 'admin-password')
    for (const value of LOOSE_DIGITS) {
      const page = await panel.get(`/admin/batches?before=${encodeURIComponent(value)}`)
      assert.equal(page.status, 422, value)
      assert.include(textOf(page.html), 'must be a batch id')
    }
    assert.equal((await panel.get('/admin/batches?before=&owner=&status=&kind=')).status, 200)

    for (const value of [`0x${plan.id.toString(16)}`, `${plan.id}e0`, `+${plan.id}`]) {
      await panel.get('/admin/users/new')
      await panel.post('/admin/users', { email: `loose-${value.trim()}@test.local`, role: 'user', planId: value })
      assert.isNull(await db.from('users').where('email', `loose-${value.trim()}@test.local`).first(), value)
    }
    await panel.get('/admin/users/new')
    await panel.post('/admin/users', { email: 'planless25@test.local', role: 'user', planId: '' })
    const planless = await db.from('users').where('email', 'planless25@test.local').first()
    assert.isNotNull(planless)
    assert.isNull(planless.plan_id)
  })
})

test.group('Leftovers (s25): a plan this instance has not loaded yet', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock({ text: 'priced answer' })
    await seedChannel({ name: 'priced', baseUrl: mock.url, models: ['priced-model'] })
    // $3 / $15 per 1M tokens: 3,000,000 and 15,000,000 pico-USD per token.
    await seedPrice('priced-model', '3', '15')
    return () => mock.stop()
  })

  test("a user on a plan whose notice never came is priced with the plan's multiplier and held to its models; the plans read for all the calls, not per call", async ({ assert }) => {
    const gw = await gateway()
    // Another instance's plan (or a notice still on its way): inserted with the change trigger off.
    const planId = await db.transaction(async (trx) => {
      await trx.rawQuery('SET LOCAL session_replication_role = replica')
      const [row] = await trx.table('plans').insert({ name: 's25-unheard-plan', price_multiplier: '2', allowed_models: JSON.stringify(['priced-*']) }).returning('id')
      return Number(row.id)
    })
    assert.isUndefined(gw.catalog.plans.get(planId), 'not loaded here')
    const { user } = await createUser({ email: 's25-plan@test.local', password: 'password123', plan: 's25-unheard-plan' })
    const { key } = await createApiKey({ userRef: 's25-plan@test.local' })
    await postLedgerEntry({ userRef: 's25-plan@test.local', kind: 'topup', amount: '10' })

    // Several calls at once: the plans read for all of them, not once each.
    let planReads = 0
    const load = gw.catalog.loadPlans.bind(gw.catalog)
    gw.catalog.loadPlans = async () => {
      planReads++
      return load()
    }
    try {
      const answers = await Promise.all(
        Array.from({ length: 6 }, () => post('/v1/chat/completions', { model: 'priced-model', messages: [{ role: 'user', content: 'hello there' }] }, { authorization: `Bearer ${key}` }))
      )
      for (const answer of answers) assert.equal(answer.status, 200, await answer.clone().text())
      // Shared: the first miss's read, and at most one after it for those that came while it was out (SharedReload).
      assert.isAtLeast(planReads, 1)
      assert.isAtMost(planReads, 2, 'the concurrent misses shared the reads')
      const reads = planReads
      // Known now: no read for the next call.
      const refused = await post('/v1/chat/completions', { model: 'other-model', messages: [{ role: 'user', content: 'hi' }] }, { authorization: `Bearer ${key}` })
      assert.equal(refused.status, 403, "the plan's model globs apply")
      assert.equal(planReads, reads, 'a known plan is never read per request')
    } finally {
      delete (gw.catalog as any).loadPlans
    }
    const rows = await usageRows(user.id)
    const priced = rows.filter((row: any) => row.model === 'priced-model')
    assert.lengthOf(priced, 6)
    for (const row of priced) {
      const list = BigInt(row.prompt_tokens) * 3_000_000n + BigInt(row.completion_tokens) * 15_000_000n
      assert.isAbove(Number(list), 0)
      assert.equal(toPico(row.cost), list * 2n, "priced with the plan's multiplier")
    }
  })
})

test.group('Leftovers (s25): /api/status names no model of a channel closed to some plans', (group) => {
  group.setup(async () => {
    await resetDatabase()
  })

  test('per-model cool-downs are listed for channels open to every plan only', async ({ assert }) => {
    const gw = await gateway()
    const plan = await createPlan({ name: 's25-status-plan' })
    const closed = await seedChannel({ name: 's25-closed', baseUrl: 'http://127.0.0.1:9', models: ['s25-private-*'], planIds: [plan.id] })
    const open = await seedChannel({ name: 's25-open', baseUrl: 'http://127.0.0.1:9', models: ['s25-public-*'] })
    gw.health.rateLimited(closed.id, 's25-private-model', 'HTTP 429', 60_000)
    gw.health.rateLimited(open.id, 's25-public-model', 'HTTP 429', 60_000)
    try {
      const answer = await fetch(`${baseUrl()}/api/status`)
      const text = await answer.text()
      const status = JSON.parse(text)
      assert.deepInclude(status.model_cooldowns.map((c: any) => [c.channel_id, c.model]), [open.id, 's25-public-model'])
      assert.notInclude(text, 's25-private-model', 'a model only some plans reach is not named publicly')
      assert.notInclude(status.model_cooldowns.map((c: any) => c.channel_id), closed.id)
    } finally {
      await gw.health.reset()
    }
  })
})

test.group('Leftovers (s25): stored-response ids no response can have', (group) => {
  group.setup(async () => {
    await resetDatabase()
  })

  test('GET, DELETE and input_items of an id with NUL or control characters: OpenAI\'s not-found error naming response_id', async ({ assert }) => {
    const user = await seedUser()
    const auth = { authorization: `Bearer ${user.key}` }
    // (A lone surrogate cannot come this way: its percent-encoding is no UTF-8, the URL's own 400 invalid_url.)
    for (const id of ['%00', 'resp_%00abc', 'resp_%01', 'resp_%1F', 'resp_%7F', '%0A']) {
      for (const [method, suffix] of [['GET', ''], ['DELETE', ''], ['GET', '/input_items']]) {
        for (const prefix of ['/v1', '']) {
          const label = `${method} ${prefix}/responses/${id}${suffix}`
          const answer = await fetch(`${baseUrl()}${prefix}/responses/${id}${suffix}`, { method, headers: auth })
          const text = await answer.text()
          assert.equal(answer.status, 404, `${label}: ${text}`)
          const body = JSON.parse(text)
          assert.include(body.error, { type: 'invalid_request_error', param: 'response_id', code: 'not_found' }, label)
          assert.match(body.error.message, /^Response with id '.*' not found\.$/, label)
          assert.notMatch(body.error.message, /[\u0000-\u001f\u007f]/, label)
        }
      }
    }
    // An ordinary unknown id: the same error.
    const unknown = await fetch(`${baseUrl()}/v1/responses/resp_unknown`, { headers: auth })
    assert.equal(unknown.status, 404)
    assert.include(((await unknown.json()) as any).error, { type: 'invalid_request_error', param: 'response_id', code: 'not_found' })
  })
})
