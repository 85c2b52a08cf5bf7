import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { postLedgerEntry } from '#actions/post_ledger_entry'
import { putSetting } from '#services/app_settings'
import { outboxIdle } from '#services/mail/mail_outbox'
import { setLowBalanceThreshold } from '#services/mail/low_balance_notice'
import { gateway, openai, resetDatabase, seedChannel, seedPrice, seedUser, startMock, type SeededUser } from '#tests/helpers'
import { PanelClient, textOf } from '#tests/panel_client'
import { MockSmtp, type ReceivedMail } from '#tests/fixtures/mock_smtp'
import { chat, sleep, startInstance, until, type Instance } from '#tests/instances_harness'

/**
 * Low-balance e-mails (app/services/mail/low_balance_notice.ts): a user sets
 * a threshold on the Billing page; the first metering batch that commits
 * their balance below it mails them once, whatever the concurrency and
 * however many instances meter; a top-up above it arms the next one.
 */
const SITE = 'https://ai.example.test'
/** 12 prompt and 5 completion tokens from the mock at $5,000 per million: $0.085 a call */
const MODEL = 'tenth-cent'

/** A small max_tokens keeps each call's hold small: 20 at once fit in the balance */
const SMALL = { max_tokens: 10 }

let smtp: MockSmtp

async function useMockSmtp() {
  await putSetting('smtp', { host: '127.0.0.1', port: smtp.port, secure: false, user: null, passwordEncrypted: null, from: 'noreply@gateway.test' })
  await putSetting('mail_options', { productName: 'Acme AI', verifySignups: false, siteUrl: SITE })
}

async function signedIn(email: string) {
  const client = new PanelClient()
  const result = await client.login(email, 'password123')
  if (result.status !== 302) throw new Error(`login of ${email} failed: ${result.status}`)
  return client
}

/** Saves the form on the Billing page as the user; the page the redirect shows. */
async function saveForm(client: PanelClient, userId: number, form: Record<string, string | string[]>) {
  await client.get('/dashboard/billing')
  const saved = await client.post('/dashboard/billing/low-balance', form)
  const page = await client.follow(saved)
  // The gateway's cached user takes the new threshold by NOTIFY, a moment after the commit.
  const gw = await gateway()
  const row = await db.from('users').where('id', userId).first()
  const want = row.low_balance_threshold === null ? null : String(Number(row.low_balance_threshold))
  await until(
    async () => gw.catalog.loadedUser(userId),
    (u) => u === undefined || (u.lowBalancePico === null ? null : String(Number(u.lowBalancePico) / 1e12)) === want,
    3000
  )
  return { saved, page }
}

/** Everything metered so far committed, its notices claimed and their mail sent. */
async function settled() {
  const gw = await gateway()
  await gw.meter.drain()
  await gw.lowBalance.idle()
  await outboxIdle()
}

async function calls(key: string, count: number) {
  const client = openai(key)
  const answers = await Promise.allSettled(
    Array.from({ length: count }, () => client.chat.completions.create({ model: MODEL, max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] }))
  )
  return answers.filter((a) => a.status === 'fulfilled').length
}

async function balanceOf(userId: number) {
  return Number((await db.from('users').where('id', userId).first()).balance)
}

/** The message's text as UTF-8 (the mock keeps the quoted-printable bytes as latin-1 characters). */
const utf8 = (mail: ReceivedMail) => Buffer.from(mail.text, 'latin1').toString('utf8')

test.group('Low-balance e-mail', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    smtp = await new MockSmtp().start()
    await seedChannel({ name: 'mock', baseUrl: mock.url, models: [MODEL] })
    await seedPrice(MODEL, '5000', '5000')
    return async () => {
      await db.from('app_settings').whereIn('key', ['smtp', 'mail_options']).delete()
      await smtp.stop()
      await mock.stop()
    }
  })
  group.each.setup(async () => {
    await useMockSmtp()
    smtp.messages = []
  })

  test('20 concurrent calls crossing at once send one e-mail; calls below it send none', async ({ assert }) => {
    const user = await seedUser({ balance: '6' })
    const { page } = await saveForm(await signedIn(user.email), user.userId, { low_balance_on: ['0', '1'], low_balance: '5' })
    assert.include(textOf(page.html), 'you will get an e-mail when your balance falls below this amount')

    assert.equal(await calls(user.key, 20), 20)
    await settled()
    assert.approximately(await balanceOf(user.userId), 4.3, 1e-9)
    const [mail] = await smtp.waitFor(user.email)
    assert.lengthOf(smtp.to(user.email), 1, 'one e-mail for the dip')
    const text = utf8(mail)
    assert.include(text, 'Acme AI', 'the product name')
    // The balance when the notice was claimed: the first batch that committed it below $5 (the 20 calls may span batches).
    const said = /balance is \$(\d+\.\d\d), below the \$5\.00 you chose/.exec(text)
    assert.isNotNull(said, 'the balance now and the threshold')
    assert.isTrue(Number(said![1]) >= 4.3 && Number(said![1]) < 5, said![1])
    assert.include(text, `${SITE}/dashboard/billing`, 'a link to top up, on the site address')
    assert.isTrue((await db.from('users').where('id', user.userId).first()).low_balance_notified)

    // Staying below: more batches, no more mail.
    for (let i = 0; i < 3; i++) {
      assert.equal(await calls(user.key, 5), 5)
      await settled()
    }
    await sleep(300)
    assert.lengthOf(smtp.to(user.email), 1, 'nothing more while the balance stays below')
  }).timeout(30_000)

  test('a top-up above the threshold arms the next notice; one below it does not', async ({ assert }) => {
    const user = await seedUser({ balance: '5.05' })
    await saveForm(await signedIn(user.email), user.userId, { low_balance_on: ['0', '1'], low_balance: '5' })
    assert.equal(await calls(user.key, 1), 1)
    await settled()
    await smtp.waitFor(user.email)

    // A top-up that leaves it below does not arm it.
    await postLedgerEntry({ userRef: user.email, kind: 'topup', amount: '0.02' })
    assert.isTrue((await db.from('users').where('id', user.userId).first()).low_balance_notified)
    // One above it does (the trigger), and the next dip mails again.
    await postLedgerEntry({ userRef: user.email, kind: 'topup', amount: '1' })
    assert.isFalse((await db.from('users').where('id', user.userId).first()).low_balance_notified)
    await until(async () => (await gateway()).catalog.loadedUser(user.userId)?.lowBalanceNotified, (told) => told === false, 3000)
    await calls(user.key, 12)
    await settled()
    await smtp.waitFor(user.email, 2)
    await sleep(300)
    assert.lengthOf(smtp.to(user.email), 2)
  }).timeout(30_000)

  test('a user without a threshold, or who turned it off, gets nothing', async ({ assert }) => {
    const never = await seedUser({ balance: '1' })
    const off = await seedUser({ balance: '1' })
    const client = await signedIn(off.email)
    await saveForm(client, off.userId, { low_balance_on: ['0', '1'], low_balance: '0.90' })
    const { page } = await saveForm(client, off.userId, { low_balance_on: '0', low_balance: '0.90' })
    assert.include(textOf(page.html), 'no low-balance e-mail')
    await Promise.all([calls(never.key, 5), calls(off.key, 5)])
    await settled()
    await sleep(300)
    assert.lengthOf(smtp.to(never.email), 0)
    assert.lengthOf(smtp.to(off.email), 0)
    const row = await db.from('users').where('id', off.userId).first()
    assert.isNull(row.low_balance_threshold)
  }).timeout(30_000)

  test('a threshold set while already below it sends nothing until the balance is back above it', async ({ assert }) => {
    const user = await seedUser({ balance: '2' })
    await saveForm(await signedIn(user.email), user.userId, { low_balance_on: ['0', '1'], low_balance: '5' })
    await calls(user.key, 2)
    await settled()
    await sleep(300)
    assert.lengthOf(smtp.to(user.email), 0)
  }).timeout(30_000)

  test('the e-mail is in the language the threshold was set in', async ({ assert }) => {
    const user = await seedUser({ balance: '1.05' })
    const client = await signedIn(user.email)
    await client.get('/lang/vi')
    await saveForm(client, user.userId, { low_balance_on: ['0', '1'], low_balance: '1' })
    await calls(user.key, 1)
    await settled()
    const [mail] = await smtp.waitFor(user.email)
    assert.include(utf8(mail), 'Nạp tiền')
  }).timeout(30_000)

  test('re-arming by saving a threshold just under the balance, call after call: at most 3 mails an hour', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const client = await signedIn(user.email)
    for (let round = 0; round < 5; round++) {
      // A cent under the balance: armed (not below it yet); one $0.085 call crosses it.
      const under = (Math.floor((await balanceOf(user.userId)) * 100) / 100 - 0.01).toFixed(2)
      await saveForm(client, user.userId, { low_balance_on: ['0', '1'], low_balance: under })
      assert.isFalse((await db.from('users').where('id', user.userId).first()).low_balance_notified, `round ${round}`)
      assert.equal(await calls(user.key, 1), 1)
      await settled()
      // Each dip is marked told, mailed or not: nothing asks again.
      assert.isTrue((await db.from('users').where('id', user.userId).first()).low_balance_notified, `round ${round}`)
    }
    await sleep(300)
    // Before, every round mailed (5, and as many as the balance paid rounds for).
    assert.lengthOf(smtp.to(user.email), 3)
    // Not an amount: an array, an object.
    for (const bad of [['5', '6'], { a: '5' }] as any[]) {
      const { page } = await saveForm(client, user.userId, { low_balance_on: ['0', '1'], low_balance: bad })
      assert.equal(page.status, 200)
    }
  }).timeout(30_000)

  test('the form refuses what is not an amount, beside the field', async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    const client = await signedIn(user.email)
    for (const bad of ['1e3', '-5', '0', '0.001', '99999999', '1000000.01', '5\u0000', 'abc', ' ', '5,5', '0x10', 'Infinity', 'x'.repeat(40)]) {
      const { saved, page } = await saveForm(client, user.userId, { low_balance_on: ['0', '1'], low_balance: bad })
      assert.equal(saved.status, 302, JSON.stringify(bad))
      assert.equal(page.status, 200, JSON.stringify(bad))
      assert.include(page.html, 'aria-invalid="true"', `${JSON.stringify(bad)} is flagged on its field`)
      assert.isNull((await db.from('users').where('id', user.userId).first()).low_balance_threshold, JSON.stringify(bad))
    }
    const { page } = await saveForm(client, user.userId, { low_balance_on: ['0', '1'], low_balance: ' 12.50 ' })
    assert.include(page.html, 'value="12.5"')
    assert.equal(Number((await db.from('users').where('id', user.userId).first()).low_balance_threshold), 12.5)
  }).timeout(30_000)

  test('without e-mail the page says so and hides the field', async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    const client = await signedIn(user.email)
    const on = await client.get('/dashboard/billing')
    assert.include(on.html, 'name="low_balance"')
    assert.include(on.html, 'value="5"', 'a suggestion while off')
    await db.from('app_settings').whereIn('key', ['smtp', 'mail_options']).delete()
    const off = await client.get('/dashboard/billing')
    assert.notInclude(off.html, 'name="low_balance"')
    assert.include(off.html, 'data-low-balance-off')
  }).timeout(30_000)
})

test.group('Low-balance e-mail: two instances', (group) => {
  let mock: MockUpstream
  let a: Instance
  let b: Instance

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    smtp = await new MockSmtp().start()
    await useMockSmtp()
    await seedChannel({ name: 'mock', baseUrl: mock.url, models: [MODEL] })
    await seedPrice(MODEL, '5000', '5000')
    ;[a, b] = await Promise.all([startInstance('A'), startInstance('B')])
    return async () => {
      await Promise.all([a?.stop(), b?.stop()])
      await db.from('app_settings').whereIn('key', ['smtp', 'mail_options']).delete()
      await smtp.stop()
      await mock.stop()
    }
  })

  async function warm(user: SeededUser) {
    for (const instance of [a, b]) {
      const answer = await until(() => chat(instance, user.key, MODEL, SMALL), (r) => r.status === 200)
      if (answer.status !== 200) throw new Error(`${instance.name} refused: ${JSON.stringify(answer.body)}`)
    }
  }

  test('a dip metered by both at once is mailed once', async ({ assert }) => {
    const user = await seedUser({ balance: '5.50' })
    await setLowBalanceThreshold(user.userId, '5', 'en')
    await warm(user)
    // Both see the threshold (NOTIFY on users.low_balance_threshold), then 10 calls on each cross it at once.
    const answers = await Promise.all([
      ...Array.from({ length: 10 }, () => chat(a, user.key, MODEL, SMALL)),
      ...Array.from({ length: 10 }, () => chat(b, user.key, MODEL, SMALL)),
    ])
    assert.deepEqual([...new Set(answers.map((r) => r.status))], [200])
    await smtp.waitFor(user.email, 1, 10_000)
    // Both instances have committed (each flushes within its METER_FLUSH_MS) and neither mails again.
    await until(() => balanceOf(user.userId), (balance) => Math.abs(balance - 3.63) < 1e-9, 5000)
    await sleep(1500)
    assert.lengthOf(smtp.to(user.email), 1)
  }).timeout(60_000)
})
