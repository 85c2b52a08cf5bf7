import { test } from '@japa/runner'
import { createHmac } from 'node:crypto'
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import db from '@adonisjs/lucid/services/db'
import logger from '@adonisjs/core/services/logger'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { AlertSender } from '#gateway/alerts/alert_sender'
import { BudgetWatch, type BudgetCrossing } from '#gateway/metering/budget_watch'
import { periodBounds } from '#gateway/metering/spend_period'
import { createUser } from '#actions/create_user'
import { createApiKey } from '#actions/issue_api_key'
import { updateApiKey, keySnapshot } from '#actions/update_api_key'
import ApiKey from '#models/api_key'
import { putSetting } from '#services/app_settings'
import { outboxIdle } from '#services/mail/mail_outbox'
import { claimBudgetAlerts } from '#services/budget_alerts'
import { queueUserWebhook, setUserWebhook, userWebhooksIdle, userWebhookStats, parseWebhookUrl } from '#services/user_webhook'
import { setLowBalanceThreshold } from '#services/mail/low_balance_notice'
import { baseUrl, gateway, openai, refreshCaches, resetDatabase, seedChannel, seedPrice, seedUser, startMock, type SeededUser } from '#tests/helpers'
import { PanelClient, textOf } from '#tests/panel_client'
import { MockSmtp } from '#tests/fixtures/mock_smtp'
import { chat, startInstance, until, type Instance } from '#tests/instances_harness'

/**
 * Budget alerts (app/services/budget_alerts.ts, metering/budget_watch.ts):
 * a key's soft budget and a customer's, 80 % and 100 % of a key's spend cap,
 * each once per period and amount, across concurrency and instances; the
 * owner's e-mail and their own signed, bounded webhook (user_webhook.ts).
 */
const SITE = 'https://ai.example.test'
/** 12 prompt and 5 completion tokens from the mock at $5,000 per million: $0.085 a call */
const MODEL = 'tenth-cent'
const SMALL = { max_tokens: 10 }

/** A webhook on loopback: every POST's headers and raw body; `hang` never answers. */
class HookReceiver {
  posts: Array<{ headers: IncomingHttpHeaders; raw: string; body: any }> = []
  /** When each post arrived (Date.now()), as posts */
  arrivals: number[] = []
  hang = false
  url = ''
  #held: ServerResponse[] = []
  #server: Server = createServer(async (req, res) => {
    let raw = ''
    for await (const chunk of req) raw += chunk
    this.arrivals.push(Date.now())
    this.posts.push({ headers: req.headers, raw, body: JSON.parse(raw) })
    if (this.hang) this.#held.push(res)
    else res.writeHead(200).end('ok')
  })

  async start() {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve))
    this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}/hook`
    return this
  }

  events(name: string) {
    return this.posts.filter((p) => p.body.event === name)
  }

  stop() {
    this.#server.closeAllConnections()
    return new Promise<void>((resolve) => this.#server.close(() => resolve()))
  }
}

async function useMockSmtp(smtp: MockSmtp) {
  await putSetting('smtp', { host: '127.0.0.1', port: smtp.port, secure: false, user: null, passwordEncrypted: null, from: 'noreply@gateway.test' })
  await putSetting('mail_options', { productName: 'Acme AI', verifySignups: false, siteUrl: SITE })
}

async function calls(key: string, count: number, extra: Record<string, unknown> = {}) {
  const client = openai(key)
  const answers = await Promise.allSettled(
    Array.from({ length: count }, () => client.chat.completions.create({ model: MODEL, ...SMALL, ...extra, messages: [{ role: 'user', content: 'hi' }] } as any))
  )
  return answers.filter((a) => a.status === 'fulfilled').length
}

/** Everything metered so far committed, its crossings claimed, their alerts, mail and webhooks sent. */
async function settled() {
  const gw = await gateway()
  await gw.meter.drain()
  await gw.budgets.idle()
  await gw.lowBalance.idle()
  await gw.alerts?.flush()
  await userWebhooksIdle()
  await outboxIdle()
}

/** What the meter keeps for a key with a daily cap that spent this much today, read again by the cache. */
async function spentToday(keyId: number, amount: string) {
  await db.from('api_keys').where('id', keyId).update({ spent: amount, period_spent: amount, period_start: new Date(periodBounds('day', Date.now()).start) })
  await refreshCaches()
}

/** The user's webhook set straight in the database (the form is tested below); its secret. */
async function withWebhook(userId: number, url: string) {
  const { secret } = await setUserWebhook(userId, url)
  return secret!
}

/**
 * Waits until `done` holds of what `probe` gives, and asserts it did: the
 * bound is only how long a loaded machine may take (met, it returns at once),
 * never a sleep the test's outcome depends on.
 */
async function eventually<T>(probe: () => Promise<T> | T, done: (value: T) => boolean, what: string, ms = 30_000): Promise<T> {
  const value = await until(async () => probe(), done, ms)
  if (!done(value)) throw new Error(`${what}: still ${String(value)} after ${ms} ms`)
  return value
}

function verify(post: { headers: IncomingHttpHeaders; raw: string }, secret: string) {
  const timestamp = String(post.headers['x-gateway-timestamp'])
  const expected = `sha256=${createHmac('sha256', secret).update(`${timestamp}.${post.raw}`).digest('hex')}`
  return post.headers['x-gateway-signature'] === expected && Math.abs(Date.now() / 1000 - Number(timestamp)) < 60
}

test.group('Budget alerts', (group) => {
  let mock: MockUpstream
  let smtp: MockSmtp
  let operator: HookReceiver
  let hook: HookReceiver
  let manager: string
  const allowed = process.env.USER_WEBHOOK_ALLOW_PRIVATE

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    smtp = await new MockSmtp().start()
    operator = await new HookReceiver().start()
    hook = await new HookReceiver().start()
    await seedChannel({ name: 'mock', baseUrl: mock.url, models: [MODEL] })
    await seedPrice(MODEL, '5000', '5000')
    await createUser({ email: 'ops@budget-alerts.test', password: 'password123', role: 'admin' })
    manager = (await createApiKey({ userRef: 'ops@budget-alerts.test', name: 'ops', manage: true })).key
    const gw = await gateway()
    return async () => {
      gw.alerts = null
      // Assigning undefined would store the text "undefined", which later child processes refuse as no boolean.
      if (allowed === undefined) delete process.env.USER_WEBHOOK_ALLOW_PRIVATE
      else process.env.USER_WEBHOOK_ALLOW_PRIVATE = allowed
      await db.from('app_settings').whereIn('key', ['smtp', 'mail_options']).delete()
      await Promise.all([smtp.stop(), operator.stop(), hook.stop(), mock.stop()])
    }
  })
  group.each.setup(async () => {
    ;(await gateway()).alerts = new AlertSender({ url: operator.url, format: 'json', repeatMs: 60 * 60_000, logger })
    process.env.USER_WEBHOOK_ALLOW_PRIVATE = 'true'
    await useMockSmtp(smtp)
    smtp.messages = []
    operator.posts = []
    hook.posts = []
    hook.arrivals = []
    hook.hang = false
  })

  const litellm = (path: string, body: unknown) =>
    fetch(`${baseUrl()}${path}`, { method: 'POST', headers: { authorization: `Bearer ${manager}`, 'content-type': 'application/json' }, body: JSON.stringify(body) })

  test('a key soft budget: set by /key/generate and /key/update, shown by /key/info, alerts once, refuses nothing', async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    const made = await litellm('/key/generate', { user_id: String(user.userId), soft_budget: 0.5 })
    assert.equal(made.status, 200)
    const generated: any = await made.json()
    assert.equal(generated.soft_budget, 0.5)
    const updated = await litellm('/key/update', { key: generated.token, soft_budget: '0.3' })
    assert.equal(updated.status, 200)
    assert.equal(((await updated.json()) as any).soft_budget, 0.3)
    const info: any = await (await fetch(`${baseUrl()}/key/info?key=${generated.token}`, { headers: { authorization: `Bearer ${manager}` } })).json()
    assert.equal(info.info.soft_budget, 0.3)
    // Not an amount: refused, the soft budget kept.
    for (const bad of ['1e3', -5, '-5', 'abc', '5\u0000', true, [1], { a: 1 }, '0.1234567']) {
      const answer = await litellm('/key/update', { key: generated.token, soft_budget: bad })
      assert.equal(answer.status, 400, JSON.stringify(bad))
      assert.equal(((await answer.json()) as any).error.param, 'soft_budget')
    }
    assert.equal(Number((await ApiKey.findOrFail(Number(generated.token))).softBudget), 0.3)

    // $0.085 a call: the fourth passes $0.30; twenty calls at once, all served.
    assert.equal(await calls(generated.key, 20), 20)
    await settled()
    for (let i = 0; i < 2; i++) {
      assert.equal(await calls(generated.key, 3), 3)
      await settled()
    }
    const alerts = operator.events('key.soft_budget_crossed')
    assert.lengthOf(alerts, 1)
    assert.include(alerts[0].body.text, 'crossed its soft budget of $0.300000')
    assert.equal(alerts[0].body.data.key_id, Number(generated.token))
    assert.lengthOf(smtp.to(user.email), 0, 'a soft budget is the operator\'s, not mailed')
  }).timeout(60_000)

  test('20 concurrent calls crossing 80 %, then 100 %, of a cap: each told once to the operator, the owner by e-mail and signed webhook', async ({ assert }) => {
    // A $20 daily cap with $14.50 spent today: 20 calls at once ($1.70) pass 80 % ($16) and all fit beside each other's holds.
    const user = await seedUser({ balance: '30', key: { spendLimit: '20', spendPeriod: 'day' } })
    await spentToday(user.keyId, '14.5')
    const secret = await withWebhook(user.userId, hook.url)
    assert.equal(await calls(user.key, 20), 20)
    await settled()
    assert.lengthOf(operator.events('key.spend_cap_warning'), 1)
    assert.lengthOf(operator.events('key.spend_cap_reached'), 0)
    assert.lengthOf(hook.posts, 1)
    // Then bursts of 20 until the cap refuses them all: the last ones pass 100 %.
    let served = 0
    for (let round = 0; round < 30; round++) {
      const now = await calls(user.key, 20)
      await settled()
      served += now
      if (now === 0) break
    }
    assert.isAbove(served, 0)
    assert.isAtLeast(Number((await db.from('api_keys').where('id', user.keyId).first()).period_spent), 20)
    // Each told at least once (waited for, not slept on), then everything in flight ended: exactly once is asserted below.
    await eventually(() => operator.events('key.spend_cap_reached').length, (n) => n >= 1, 'cap reached alerts')
    await smtp.waitFor(user.email, 2, 30_000)
    await eventually(() => hook.posts.length, (n) => n >= 2, 'webhook posts')
    await settled()

    const warning = operator.events('key.spend_cap_warning')
    const reached = operator.events('key.spend_cap_reached')
    assert.lengthOf(warning, 1)
    assert.lengthOf(reached, 1)
    assert.include(warning[0].body.text, 'has used 80% of its spend cap of $20.000000 per day (UTC)')
    assert.include(reached[0].body.text, 'reached its spend cap of $20.000000 per day (UTC)')

    const mails = smtp.to(user.email)
    assert.lengthOf(mails, 2)
    assert.isTrue(mails.some((m) => m.raw.includes('80%')))
    assert.include(mails.map((m) => m.text).join('\n'), `${SITE}/dashboard/keys`)

    assert.lengthOf(hook.posts, 2)
    assert.deepEqual(hook.posts.map((p) => p.body.event).sort(), ['key.spend_cap_reached', 'key.spend_cap_warning'])
    for (const post of hook.posts) {
      assert.isTrue(verify(post, secret), 'signed with the secret shown once')
      assert.equal(post.body.data.key_id, user.keyId)
      assert.match(post.body.at, /^\d{4}-\d\d-\d\dT/)
      assert.isString(post.body.text)
    }
    assert.isFalse(verify(hook.posts[0], secret + 'x'))
  }).timeout(60_000)

  test('a raised cap re-arms its warnings; an unchanged one does not', async ({ assert }) => {
    const user = await seedUser({ balance: '10', key: { spendLimit: '1' } })
    await withWebhook(user.userId, hook.url)
    // $0.085 a call: the tenth passes 80 % ($0.80).
    for (let i = 0; i < 10; i++) assert.equal(await calls(user.key, 1), 1)
    await settled()
    assert.lengthOf(hook.events('key.spend_cap_warning'), 1)
    // Saved again with the same cap (another field changed): nothing re-armed.
    const key = await ApiKey.findOrFail(user.keyId)
    await updateApiKey(user.keyId, { ...keySnapshot(key), name: 'renamed', expiresOn: null, spendLimit: '1', spendPeriod: null } as any)
    assert.lengthOf(await db.from('budget_alert_marks').where({ kind: 'key', subject_id: user.keyId }), 1)
    // Raised to $1.25: $0.85 spent is 68 %; three more calls pass 80 % ($1.00) again.
    await updateApiKey(user.keyId, { ...keySnapshot(key), name: 'renamed', expiresOn: null, spendLimit: '1.25', spendPeriod: null } as any)
    assert.lengthOf(await db.from('budget_alert_marks').where({ kind: 'key', subject_id: user.keyId }), 0)
    // The cache no longer holds the old cap (dropped: the next call reads the key again; or read again already)
    await eventually(async () => (await gateway()).catalog.loadedKey(user.keyId), (k) => k === undefined || k.spendLimitPico === 1_250_000_000_000n, 'the cached cap')
    assert.equal(await calls(user.key, 1), 1)
    await settled()
    assert.lengthOf(hook.events('key.spend_cap_warning'), 1, '68 %: nothing yet')
    for (let i = 0; i < 2; i++) assert.equal(await calls(user.key, 1), 1)
    await settled()
    assert.lengthOf(hook.events('key.spend_cap_warning'), 2)
    assert.lengthOf(smtp.to(user.email), 2)
  }).timeout(60_000)

  test('a new period re-arms: the watch asks again after the period rolls, and a mark of the last period does not count', async ({ assert }) => {
    const user = await seedUser({ balance: '10', key: { spendLimit: '1', spendPeriod: 'day' } })
    const today = periodBounds('day', Date.now())
    // What the meter keeps for a key that spent $0.90 today; a mark already made yesterday.
    await db.from('api_keys').where('id', user.keyId).update({ period_spent: '0.9', spent: '0.9', period_start: new Date(today.start) })
    const yesterday = new Date(today.start - 86_400_000).toISOString().slice(0, 10)
    await db.table('budget_alert_marks').insert({ kind: 'key', subject_id: user.keyId, threshold: 80, period_start: yesterday })
    const told = await claimBudgetAlerts([{ kind: 'key', id: user.keyId, threshold: 80 }], null)
    assert.deepEqual(told.told, [{ kind: 'key', id: user.keyId, threshold: 80 }])
    assert.lengthOf(await db.from('budget_alert_marks').where({ kind: 'key', subject_id: user.keyId }), 2)
    // Claimed again in the same period: told, nothing new.
    assert.lengthOf((await claimBudgetAlerts([{ kind: 'key', id: user.keyId, threshold: 80 }], null)).told, 1)
    assert.lengthOf(await db.from('budget_alert_marks').where({ kind: 'key', subject_id: user.keyId }), 2)

    // The watch: told for this period; once the clock passes into the next one (the cached key rolls to 0), it asks again.
    const asked: BudgetCrossing[][] = []
    let clock = today.start + 3_600_000
    const key: any = { id: 1, spendLimitPico: 1_000_000_000_000n, softBudgetPico: null, spentPico: 900_000_000_000n, spendPeriod: 'day', periodStartsAt: today.start, periodEndsAt: today.end }
    const watch = new BudgetWatch(() => key, () => undefined, async (c) => (asked.push(c), { told: c }), () => {}, () => clock)
    watch.committed([{ userId: 1, apiKeyId: 1 }])
    await watch.idle()
    watch.committed([{ userId: 1, apiKeyId: 1 }])
    await watch.idle()
    assert.lengthOf(asked, 1, 'once per period')
    clock = today.end + 3_600_000
    watch.committed([{ userId: 1, apiKeyId: 1 }])
    assert.lengthOf(asked, 1, 'rolled to 0: below 80 %')
    assert.equal(key.spentPico, 0n)
    key.spentPico = 800_000_000_000n
    watch.committed([{ userId: 1, apiKeyId: 1 }])
    await watch.idle()
    assert.lengthOf(asked, 2, 'a new period warns again')
    watch.committed([{ userId: 1, apiKeyId: 1 }])
    await watch.idle()
    assert.lengthOf(asked, 2)
  }).timeout(30_000)

  test('a crossing a batch commits while the claim of it is out is asked again when that claim did not tell it', async ({ assert }) => {
    // What 20 calls at once did under load: the meter commits them in several batches, the first batch's claim reads
    // the committed spend before the next batch's commit (not past 80 % yet: not told), and that next batch, the one
    // that was to ask again, saw the claim out and asked nothing: the warning was never sent.
    const today = periodBounds('day', Date.now())
    const key: any = { id: 1, spendLimitPico: 1_000_000_000_000n, softBudgetPico: null, spentPico: 850_000_000_000n, spendPeriod: 'day', periodStartsAt: today.start, periodEndsAt: today.end }
    const asked: BudgetCrossing[][] = []
    const answers: Array<(told: BudgetCrossing[]) => void> = []
    const claim = (crossings: BudgetCrossing[]) => {
      asked.push(crossings)
      return new Promise<{ told: BudgetCrossing[] }>((resolve) => answers.push((told) => resolve({ told })))
    }
    const watch = new BudgetWatch(() => key, () => undefined, claim, () => {}, () => today.start + 3_600_000)
    const warning: BudgetCrossing = { kind: 'key', id: 1, threshold: 80 }
    watch.committed([{ userId: 1, apiKeyId: 1 }])
    watch.committed([{ userId: 1, apiKeyId: 1 }])
    assert.deepEqual(asked, [[warning]], 'one claim out at a time')
    let idle = false
    const idled = watch.idle().then(() => (idle = true))
    // The first claim tells nothing (the committed spend it read was below 80 %): the second batch's crossing is asked now.
    answers[0]([])
    await eventually(() => asked.length, (n) => n === 2, 'the crossing asked again')
    assert.deepEqual(asked[1], [warning])
    assert.isFalse(idle, 'idle waits for the claim asked again')
    answers[1]([warning])
    await idled
    // Told: neither the next batch nor one during a claim that told asks again.
    watch.committed([{ userId: 1, apiKeyId: 1 }])
    await watch.idle()
    assert.lengthOf(asked, 2)
  })

  test("a customer's shared budget soft budget alerts once; calls go on", async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    assert.equal((await litellm('/budget/new', { budget_id: 'soft-30c', soft_budget: 0.3 })).status, 200)
    const customer = await litellm('/customer/new', { user_id: 'alice', budget_id: 'soft-30c', owner: user.email })
    assert.equal(customer.status, 200, await customer.clone().text())
    await eventually(async () => (await gateway()).catalog.endUsers.policyOf(user.userId, 'alice')?.softBudgetPico, (v) => v === 300_000_000_000n, "the cached customer's budget")
    assert.equal(await calls(user.key, 10, { user: 'alice' }), 10)
    await settled()
    assert.equal(await calls(user.key, 5, { user: 'alice' }), 5)
    await settled()
    const alerts = operator.events('customer.soft_budget_crossed')
    assert.lengthOf(alerts, 1)
    assert.equal(alerts[0].body.data.end_user, 'alice')
    assert.equal(alerts[0].body.data.budget_id, 'soft-30c')
  }).timeout(30_000)

  test('the low-balance crossing goes to the webhook too, e-mail on or off', async ({ assert }) => {
    const user = await seedUser({ balance: '5.10' })
    const secret = await withWebhook(user.userId, hook.url)
    await setLowBalanceThreshold(user.userId, '5', 'en')
    await db.from('app_settings').whereIn('key', ['smtp', 'mail_options']).delete()
    // Not cached (the first call reads the user), or cached with the threshold
    await eventually(async () => (await gateway()).catalog.loadedUser(user.userId), (u) => u === undefined || u.lowBalancePico === 5_000_000_000_000n, 'the cached threshold')
    assert.equal(await calls(user.key, 3), 3)
    await settled()
    const posts = hook.events('user.low_balance')
    assert.lengthOf(posts, 1)
    assert.isTrue(verify(posts[0], secret))
    assert.equal(posts[0].body.data.threshold, '5.00')
  }).timeout(30_000)

  test('a webhook that never answers holds nothing: calls are served at once, the post gives up after 5 s', async ({ assert }) => {
    hook.hang = true
    const user = await seedUser({ balance: '10', key: { spendLimit: '0.5' } })
    await withWebhook(user.userId, hook.url)
    const failedBefore = userWebhookStats.failed
    // The fifth call passes 80 % ($0.40), the sixth 100 %: two posts, both left unanswered.
    for (let i = 0; i < 6; i++) assert.equal(await calls(user.key, 1), 1)
    await (await gateway()).meter.drain()
    await (await gateway()).budgets.idle()
    await eventually(() => hook.posts.length, (n) => n >= 1, 'a post to the webhook')
    const posted = hook.arrivals[0]
    // The post is out and unanswered: a call is answered while it hangs (before the gateway gives up on it); past the
    // cap now, so refused, as before this test waited on conditions rather than the clock.
    let gaveUp: number | null = null
    const idle = userWebhooksIdle().then(() => (gaveUp = Date.now()))
    await calls(user.key, 1)
    assert.isNull(gaveUp, 'answered while the post hung')
    assert.equal(userWebhookStats.failed, failedBefore)
    await idle
    // Given up by the gateway's 5 s bound (not sooner, not at some far longer default), counted, not thrown.
    assert.isAtLeast(gaveUp! - posted, 4_900)
    assert.isBelow(gaveUp! - posted, 20_000)
    assert.isAbove(userWebhookStats.failed, failedBefore, 'timed out, counted, not thrown')
  }).timeout(60_000)

  test('SSRF: without the switch, loopback, private and link-local targets are refused, by name or by address', async ({ assert }) => {
    process.env.USER_WEBHOOK_ALLOW_PRIVATE = 'false'
    const port = new URL(hook.url).port
    const secret = (await setUserWebhook((await seedUser()).userId, hook.url)).secret!
    const row = await db.from('users').whereNotNull('alert_webhook_secret').orderBy('id', 'desc').first()
    const before = userWebhookStats.failed
    for (const url of [hook.url, `http://localhost:${port}/hook`, `http://[::1]:${port}/hook`, `http://[::ffff:127.0.0.1]:${port}/hook`, `http://0x7f000001:${port}/hook`, 'http://10.0.0.1/hook', 'http://169.254.169.254/latest/meta-data', 'http://192.168.1.1/']) {
      queueUserWebhook(row.id, url, row.alert_webhook_secret, { event: 'test', text: 'x', data: {} })
    }
    await userWebhooksIdle()
    assert.lengthOf(hook.posts, 0)
    assert.equal(userWebhookStats.failed - before, 8)
    // With the switch (tests, a LAN), the same URL is posted to.
    process.env.USER_WEBHOOK_ALLOW_PRIVATE = 'true'
    queueUserWebhook(row.id, hook.url, row.alert_webhook_secret, { event: 'test', text: 'x', data: {} })
    await userWebhooksIdle()
    assert.lengthOf(hook.posts, 1)
    assert.isTrue(verify(hook.posts[0], secret))
  }).timeout(30_000)

  test('the Billing form: a URL saved shows its secret once; hostile input is refused beside the field', async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    const client = new PanelClient()
    assert.equal((await client.login(user.email, 'password123')).status, 302)
    await client.get('/dashboard/billing')
    const saved = await client.post('/dashboard/billing/webhook', { webhook_url: hook.url })
    assert.equal(saved.status, 200)
    const secret = /<code id="webhook-secret" class="key">(whsec_[\w-]+)<\/code>/.exec(saved.html)?.[1]
    assert.isString(secret)
    const page = await client.get('/dashboard/billing')
    assert.notInclude(page.html, secret!, 'shown once')
    assert.include(textOf(page.html), `Posting to ${hook.url}`)

    for (const bad of ['javascript:alert(1)', 'http://a\u0000b.test/', 'ftp://example.com/', 'https://user:pw@example.com/', `https://example.com/${'a'.repeat(10_000)}`, 'example.com', ' ', 'http://exa mple.com/', 'data:text/html,x']) {
      const answer = await client.post('/dashboard/billing/webhook', { webhook_url: bad })
      const shown = await client.follow(answer)
      assert.equal(shown.status, 200, JSON.stringify(bad).slice(0, 40))
      if (bad.trim() !== '') assert.include(shown.html, 'aria-invalid="true"', JSON.stringify(bad).slice(0, 40))
    }
    // A blank one removed it (the ' ' case); the others kept what was there.
    assert.isNull((await db.from('users').where('id', user.userId).first()).alert_webhook_url)
    assert.equal(parseWebhookUrl('javascript:alert(1)'), null)
    assert.equal(parseWebhookUrl(' HTTPS://Example.COM/h '), 'https://example.com/h')
  }).timeout(30_000)
})

test.group('Budget alerts: two instances', (group) => {
  let mock: MockUpstream
  let smtp: MockSmtp
  let operator: HookReceiver
  let hook: HookReceiver
  let a: Instance
  let b: Instance

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    smtp = await new MockSmtp().start()
    operator = await new HookReceiver().start()
    hook = await new HookReceiver().start()
    await useMockSmtp(smtp)
    await seedChannel({ name: 'mock', baseUrl: mock.url, models: [MODEL] })
    await seedPrice(MODEL, '5000', '5000')
    const env = { ALERT_WEBHOOK_URL: operator.url, ALERT_WEBHOOK_FORMAT: 'json', USER_WEBHOOK_ALLOW_PRIVATE: 'true' }
    ;[a, b] = await Promise.all([startInstance('A', env), startInstance('B', env)])
    return async () => {
      await Promise.all([a?.stop(), b?.stop()])
      await db.from('app_settings').whereIn('key', ['smtp', 'mail_options']).delete()
      await Promise.all([smtp.stop(), operator.stop(), hook.stop(), mock.stop()])
    }
  })

  async function warm(user: SeededUser) {
    for (const instance of [a, b]) {
      // Until the instance has heard of the new key (a loaded machine may take seconds)
      const answer = await until(() => chat(instance, user.key, MODEL, SMALL), (r) => r.status === 200, 30_000)
      if (answer.status !== 200) throw new Error(`${instance.name} refused: ${JSON.stringify(answer.body)}`)
    }
  }

  const burst = (user: SeededUser) =>
    Promise.all([
      ...Array.from({ length: 10 }, () => chat(a, user.key, MODEL, SMALL)),
      ...Array.from({ length: 10 }, () => chat(b, user.key, MODEL, SMALL)),
    ])

  test('80 % and 100 % of a cap metered by both at once: each told once', async ({ assert }) => {
    const user = await seedUser({ balance: '10', key: { spendLimit: '2.10', spendPeriod: 'day' } })
    await setUserWebhook(user.userId, hook.url)
    await warm(user)
    // 2 warm-up calls ($0.17) + 20 ($1.70) = $1.87: past 80 % ($1.68), below $2.10.
    const first = await burst(user)
    assert.deepEqual([...new Set(first.map((r) => r.status))], [200])
    await eventually(() => operator.events('key.spend_cap_warning').length, (n) => n >= 1, 'cap warnings')
    // Then past 100 %.
    const second = await burst(user)
    assert.include(second.map((r) => r.status), 200)
    await eventually(() => operator.events('key.spend_cap_reached').length, (n) => n >= 1, 'cap reached alerts')
    await smtp.waitFor(user.email, 2, 30_000)
    await eventually(() => hook.posts.length, (n) => n >= 2, 'webhook posts')
    // More calls, then both have committed every one served (waited for in the table, not slept on); a crossing is
    // told only by the claim that marks it (budget_alert_marks), so the two marks there are all that was or will be told.
    const served = 2 + [...first, ...second, ...(await burst(user)), ...(await burst(user))].filter((r) => r.status === 200).length
    const committed = () => db.from('usage_records').where({ api_key_id: user.keyId, status: 200 }).count('* as n').first()
    await eventually(async () => Number((await committed())!.n), (n) => n === served, 'usage rows committed')
    const marks = await db.from('budget_alert_marks').where({ kind: 'key', subject_id: user.keyId }).orderBy('threshold')
    assert.deepEqual(marks.map((m) => Number(m.threshold)), [80, 100])
    assert.lengthOf(operator.events('key.spend_cap_warning'), 1)
    assert.lengthOf(operator.events('key.spend_cap_reached'), 1)
    assert.lengthOf(smtp.to(user.email), 2)
    assert.lengthOf(hook.events('key.spend_cap_warning'), 1)
    assert.lengthOf(hook.events('key.spend_cap_reached'), 1)
  }).timeout(90_000)
})
