import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import env from '#start/env'
import { MockStripe, stripeEvent, type MockSession } from '#tests/fixtures/mock_stripe'
import { balanceAndLedger, baseUrl, gateway, resetDatabase, seedUser } from '#tests/helpers'
import { PageClient, htmlText } from '#tests/page_client'
import { PanelClient, textOf } from '#tests/panel_client'
import { createUser } from '#actions/create_user'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import logger from '@adonisjs/core/services/logger'
import { AlertSender } from '#gateway/alerts/alert_sender'
import ace from '@adonisjs/core/services/ace'
import PaymentsSync from '#commands/payments_sync'

const WEBHOOK_SECRET = 'whsec_test_card_payments'

/** Stripe on: the mock's address and keys, for this group only. */
function configureStripe(stripe: MockStripe, webhookSecret: string | null = WEBHOOK_SECRET) {
  env.set('STRIPE_SECRET_KEY', stripe.secretKey)
  env.set('STRIPE_API_BASE', stripe.url)
  env.set('STRIPE_WEBHOOK_SECRET', webhookSecret ?? '')
}

function stripeOff() {
  env.set('STRIPE_SECRET_KEY', '')
  env.set('STRIPE_WEBHOOK_SECRET', '')
  env.set('STRIPE_API_BASE', '')
}

async function deliver(event: { body: string; signature: string }) {
  const response = await fetch(`${baseUrl()}/webhooks/stripe`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'stripe-signature': event.signature },
    body: event.body,
  })
  return { status: response.status, json: (await response.json()) as any }
}

/** A signed-in user with no money, on the billing page. */
async function payer() {
  const seeded = await seedUser()
  const client = new PageClient()
  await client.login(seeded.email)
  await client.get('/dashboard/billing')
  return { ...seeded, client }
}

/** The user asks to pay `amount` by card: the redirect to Stripe, and the session Stripe made. */
async function checkout(client: PageClient, stripe: MockStripe, amount: string) {
  const posted = await client.post('/dashboard/billing/checkout', { amount })
  return { posted, session: posted.location?.startsWith(stripe.url) ? stripe.last : null }
}

async function topups(userId: number) {
  return db.from('balance_ledger').where('user_id', userId).where('kind', 'topup').orderBy('id')
}

test.group('Card top-ups through Stripe Checkout', (group) => {
  let stripe: MockStripe

  group.setup(async () => {
    await resetDatabase()
    stripe = await new MockStripe().start()
    configureStripe(stripe)
    return async () => {
      stripeOff()
      await stripe.stop()
    }
  })
  group.each.setup(() => {
    configureStripe(stripe)
    stripe.failing = null
  })

  test('checkout makes a pending payment and a Stripe session for exactly that amount, and sends the user there', async ({ assert }) => {
    const user = await payer()
    const page = await user.client.get('/dashboard/billing')
    assert.include(page.body, 'action="/dashboard/billing/checkout"')
    assert.include(htmlText(page.body), 'From $5.00 to $1,000.00')

    const { posted, session } = await checkout(user.client, stripe, '25.50')
    assert.equal(posted.status, 302)
    assert.equal(posted.location, session!.url)
    const call = stripe.calls.at(-1)!
    assert.equal(call.method, 'POST')
    assert.equal(call.headers.authorization, `Bearer ${stripe.secretKey}`)
    assert.match(String(call.headers['idempotency-key']), /^gateway-payment-\d+-\d+$/)
    assert.equal(call.form['mode'], 'payment')
    assert.equal(call.form['line_items[0][price_data][unit_amount]'], '2550')
    assert.equal(call.form['line_items[0][price_data][currency]'], 'usd')
    assert.equal(call.form['client_reference_id'], String(user.userId))
    assert.equal(call.form['customer_email'], user.email)
    assert.equal(call.form['success_url'], `${baseUrl()}/dashboard/billing/checkout/return?session_id={CHECKOUT_SESSION_ID}`)

    const payment = await db.from('payments').where('user_id', user.userId).first()
    assert.equal(payment.status, 'pending')
    assert.equal(payment.session_id, session!.id)
    assert.equal(payment.amount, '25.500000000000')
    assert.equal(payment.amount_cents, 2550)
    assert.equal(call.form['metadata[payment_id]'], String(payment.id))
    assert.lengthOf(await topups(user.userId), 0, 'nothing is credited before Stripe says paid')
  })

  test('behind a proxy, APP_URL is where Stripe sends the user back', async ({ assert }) => {
    const user = await payer()
    env.set('APP_URL', 'https://gateway.example.com/')
    try {
      await checkout(user.client, stripe, '10')
    } finally {
      env.set('APP_URL', '')
    }
    const form = stripe.calls.at(-1)!.form
    assert.equal(form['success_url'], 'https://gateway.example.com/dashboard/billing/checkout/return?session_id={CHECKOUT_SESSION_ID}')
    assert.equal(form['cancel_url'], 'https://gateway.example.com/dashboard/billing?checkout=cancelled')
  })

  test('amounts outside the bounds or finer than cents are refused beside the field, and nothing reaches Stripe', async ({ assert }) => {
    const user = await payer()
    const before = stripe.calls.length
    for (const [amount, message] of [
      ['2', 'Enter an amount from $5.00 to $1,000.00.'],
      ['5000', 'Enter an amount from $5.00 to $1,000.00.'],
      ['12.345', 'must be in dollars and cents'],
      ['ten', 'must be in dollars and cents'],
    ]) {
      const { posted } = await checkout(user.client, stripe, amount)
      assert.equal(posted.status, 302, amount)
      assert.notInclude(String(posted.location), stripe.url)
      const page = await user.client.get('/dashboard/billing')
      assert.include(htmlText(page.body), message, amount)
    }
    assert.equal(stripe.calls.length, before)
    assert.equal(Number((await db.from('payments').where('user_id', user.userId).count('* as n'))[0].n), 0)
  })

  test('a signed checkout.session.completed credits the amount once, however often Stripe delivers it', async ({ assert }) => {
    const user = await payer()
    const { session } = await checkout(user.client, stripe, '40')
    stripe.pay(session!.id)
    const event = stripeEvent('checkout.session.completed', session!, WEBHOOK_SECRET)

    const first = await deliver(event)
    assert.equal(first.status, 200)
    assert.equal(first.json.outcome, 'credited')
    const again = await deliver(event)
    assert.equal(again.status, 200)
    assert.equal(again.json.outcome, 'already_paid')

    const credited = await topups(user.userId)
    assert.lengthOf(credited, 1)
    assert.equal(credited[0].amount, '40.000000000000')
    assert.match(credited[0].note, /^Card payment cs_…/)
    const money = await balanceAndLedger(user.userId)
    assert.equal(money.balance, '40.000000000000')
    assert.equal(money.ledger, money.balance)
    const payment = await db.from('payments').where('session_id', session!.id).first()
    assert.equal(payment.status, 'paid')
    assert.equal(payment.ledger_entry_id, credited[0].id)
    const audit = await db.from('audit_log').where('action', 'payment.credit').orderBy('id', 'desc').first()
    assert.equal(audit.source, 'stripe')
    assert.include(audit.summary, `${user.email} paid $40.00 by card`)

    // The money is usable at once: the billing page (and the cache behind /v1) shows it.
    const page = await user.client.get('/dashboard/billing')
    assert.include(page.body, 'data-balance="40.000000000000"')
  })

  test('a credited payment is told to the operator\'s alert webhook, once', async ({ assert, cleanup }) => {
    const received: any[] = []
    const hook = createServer(async (req, res) => {
      let raw = ''
      for await (const chunk of req) raw += chunk
      received.push(JSON.parse(raw))
      res.writeHead(200).end()
    })
    await new Promise<void>((resolve) => hook.listen(0, '127.0.0.1', resolve))
    const gw = await gateway()
    gw.alerts = new AlertSender({ url: `http://127.0.0.1:${(hook.address() as AddressInfo).port}/`, format: 'json', repeatMs: 60_000, logger })
    cleanup(async () => {
      gw.alerts = null
      hook.closeAllConnections()
      await new Promise((resolve) => hook.close(resolve))
    })
    const user = await payer()
    const { session } = await checkout(user.client, stripe, '33')
    stripe.pay(session!.id)
    const event = stripeEvent('checkout.session.completed', session!, WEBHOOK_SECRET)
    await deliver(event)
    await deliver(event)
    await gw.alerts.flush()
    const alerts = received.filter((b) => b.event === 'payment.received')
    assert.lengthOf(alerts, 1)
    assert.include(alerts[0].text, `Card payment received: ${user.email} paid $33.00`)
  })

  test('the webhook and the user returning race: one credit', async ({ assert }) => {
    const user = await payer()
    const { session } = await checkout(user.client, stripe, '15')
    stripe.pay(session!.id)
    const event = stripeEvent('checkout.session.completed', session!, WEBHOOK_SECRET)
    await Promise.all([
      ...Array.from({ length: 8 }, () => deliver(event)),
      user.client.get(`/dashboard/billing/checkout/return?session_id=${session!.id}`),
      user.client.get(`/dashboard/billing/checkout/return?session_id=${session!.id}`),
    ])
    assert.lengthOf(await topups(user.userId), 1)
    assert.equal((await balanceAndLedger(user.userId)).balance, '15.000000000000')
  })

  test('returning from Stripe settles the payment without the webhook, and says so', async ({ assert }) => {
    configureStripe(stripe, null)
    const user = await payer()
    const { session } = await checkout(user.client, stripe, '20')

    // Back before paying (or still processing): nothing credited, the page says it is being confirmed.
    let back = await user.client.get(`/dashboard/billing/checkout/return?session_id=${session!.id}`)
    assert.equal(back.location, '/dashboard/billing')
    let page = await user.client.get('/dashboard/billing')
    assert.include(htmlText(page.body), 'The payment of $20.00 is being confirmed')
    assert.lengthOf(await topups(user.userId), 0)

    stripe.pay(session!.id)
    back = await user.client.get(`/dashboard/billing/checkout/return?session_id=${session!.id}`)
    page = await user.client.get('/dashboard/billing')
    assert.include(htmlText(page.body), 'Payment received: $20.00 was added to your balance.')
    assert.include(page.body, 'data-payment-status="paid"')
    assert.lengthOf(await topups(user.userId), 1)

    // Without a webhook secret the endpoint refuses events (nothing can be forged through it).
    const refused = await deliver(stripeEvent('checkout.session.completed', session!, WEBHOOK_SECRET))
    assert.equal(refused.status, 404)
  })

  test('forged, re-signed or replayed events are refused and credit nothing', async ({ assert }) => {
    const user = await payer()
    const { session } = await checkout(user.client, stripe, '30')
    const paid: MockSession = { ...session!, status: 'complete', payment_status: 'paid' }

    const wrongSecret = await deliver(stripeEvent('checkout.session.completed', paid, WEBHOOK_SECRET, { signWith: 'whsec_attacker' }))
    assert.equal(wrongSecret.status, 400)
    assert.equal(wrongSecret.json.error.code, 'invalid_signature')

    const old = await deliver(stripeEvent('checkout.session.completed', paid, WEBHOOK_SECRET, { timestamp: Math.floor(Date.now() / 1000) - 3600 }))
    assert.equal(old.status, 400)
    assert.include(old.json.error.message, 'tolerance')

    const signed = stripeEvent('checkout.session.completed', paid, WEBHOOK_SECRET)
    const tampered = await deliver({ body: signed.body.replace('"amount_total":3000', '"amount_total":300000'), signature: signed.signature })
    assert.equal(tampered.status, 400)

    const unsigned = await fetch(`${baseUrl()}/webhooks/stripe`, { method: 'POST', body: signed.body })
    assert.equal(unsigned.status, 400)

    assert.lengthOf(await topups(user.userId), 0)
    // Stripe itself still says unpaid: the return page credits nothing either.
    await user.client.get(`/dashboard/billing/checkout/return?session_id=${session!.id}`)
    assert.lengthOf(await topups(user.userId), 0)
  })

  test('a session paid for another amount than asked is not credited, and the payment says why', async ({ assert }) => {
    const user = await payer()
    const { session } = await checkout(user.client, stripe, '50')
    stripe.pay(session!.id, { amount_total: 500 })
    const result = await deliver(stripeEvent('checkout.session.completed', stripe.sessions.get(session!.id)!, WEBHOOK_SECRET))
    assert.equal(result.json.outcome, 'mismatch')
    assert.lengthOf(await topups(user.userId), 0)
    const payment = await db.from('payments').where('session_id', session!.id).first()
    assert.equal(payment.status, 'failed')
    assert.include(payment.failure, 'Stripe reported 500 usd paid, the payment asked 5000 usd')
  })

  test('expired and failed sessions are recorded; a later real payment of an expired one still credits', async ({ assert }) => {
    const user = await payer()
    const { session } = await checkout(user.client, stripe, '10')
    stripe.expire(session!.id)
    const expired = await deliver(stripeEvent('checkout.session.expired', stripe.sessions.get(session!.id)!, WEBHOOK_SECRET))
    assert.equal(expired.json.outcome, 'expired')
    assert.equal((await db.from('payments').where('session_id', session!.id).first()).status, 'expired')

    const second = await checkout(user.client, stripe, '12')
    const failed = await deliver(stripeEvent('checkout.session.async_payment_failed', second.session!, WEBHOOK_SECRET))
    assert.equal(failed.json.outcome, 'failed')
    const page = await user.client.get('/dashboard/billing')
    assert.include(page.body, 'data-payment-status="failed"')
    assert.include(page.body, 'data-payment-status="expired"')

    // A bank debit that Stripe reports paid after all (async_payment_succeeded) is credited.
    stripe.pay(second.session!.id)
    const succeeded = await deliver(stripeEvent('checkout.session.async_payment_succeeded', stripe.sessions.get(second.session!.id)!, WEBHOOK_SECRET))
    assert.equal(succeeded.json.outcome, 'credited')
    assert.equal((await balanceAndLedger(user.userId)).balance, '12.000000000000')
  })

  test('Stripe down: the user is told, the payment is marked failed, nothing is credited', async ({ assert }) => {
    const user = await payer()
    stripe.failing = { status: 500, message: 'An unknown error occurred' }
    const { posted } = await checkout(user.client, stripe, '25')
    assert.equal(posted.location, '/dashboard/billing')
    const page = await user.client.get('/dashboard/billing')
    assert.include(htmlText(page.body), 'The payment could not be started')
    const payment = await db.from('payments').where('user_id', user.userId).first()
    assert.equal(payment.status, 'failed')
    assert.equal(payment.failure, 'An unknown error occurred')
  })

  test('a user cannot settle or see another user\'s payment; unknown sessions are acknowledged and ignored', async ({ assert }) => {
    const owner = await payer()
    const other = await payer()
    const { session } = await checkout(owner.client, stripe, '30')
    stripe.pay(session!.id)
    const back = await other.client.get(`/dashboard/billing/checkout/return?session_id=${session!.id}`)
    assert.equal(back.location, '/dashboard/billing')
    const page = await other.client.get('/dashboard/billing')
    assert.include(htmlText(page.body), 'That payment was not found in your account.')
    assert.lengthOf(await topups(owner.userId), 0)
    assert.lengthOf(await topups(other.userId), 0)

    const foreign = { ...session!, id: 'cs_test_made_elsewhere', metadata: { payment_id: '999999' } }
    const ignored = await deliver(stripeEvent('checkout.session.completed', foreign, WEBHOOK_SECRET))
    assert.equal(ignored.status, 200)
    assert.equal(ignored.json.outcome, 'unknown')
  })

  test('unfinished checkouts are bounded per user', async ({ assert }) => {
    const user = await payer()
    for (let i = 0; i < 5; i++) assert.isNotNull((await checkout(user.client, stripe, '5')).session)
    const { posted } = await checkout(user.client, stripe, '5')
    assert.equal(posted.location, '/dashboard/billing')
    const page = await user.client.get('/dashboard/billing')
    assert.include(htmlText(page.body), 'You have several unfinished payments')
  })

  test('the admin Payments page lists payments, and "Check with Stripe" settles a payment whose webhook never came', async ({ assert }) => {
    const user = await payer()
    const { session } = await checkout(user.client, stripe, '75')
    stripe.pay(session!.id)
    await createUser({ email: 'pay-admin@test.local', password: 'password123', role: 'admin' })
    const admin = new PanelClient()
    await admin.login('pay-admin@test.local', 'password123')
    let page = await admin.get('/admin/payments?status=pending')
    assert.equal(page.status, 200)
    const text = textOf(page.html)
    assert.include(text, user.email)
    assert.include(text, '$75.00')
    assert.include(page.html, session!.id)
    const id = (await db.from('payments').where('session_id', session!.id).first()).id

    const checked = await admin.post(`/admin/payments/${id}/check`, {})
    assert.equal(checked.status, 302)
    page = await admin.get('/admin/payments')
    assert.include(textOf(page.html), 'Stripe says it is paid: the amount was added to the balance now.')
    assert.include(page.html, `data-payment="${id}" data-status="paid"`)
    assert.include(textOf(page.html), 'Paid this month')
    assert.equal((await balanceAndLedger(user.userId)).balance, '75.000000000000')

    await admin.post(`/admin/payments/${id}/check`, {})
    assert.lengthOf(await topups(user.userId), 1)
  })

  test('payments:sync settles what the webhook missed: paid ones credited once, expired ones marked, fresh ones left', async ({ assert }) => {
    const user = await payer()
    const paid = (await checkout(user.client, stripe, '8')).session!
    const expired = (await checkout(user.client, stripe, '9')).session!
    const open = (await checkout(user.client, stripe, '11')).session!
    stripe.pay(paid.id)
    stripe.expire(expired.id)
    const run = async () => {
      const command = await ace.create(PaymentsSync, ['--older-than', '0'])
      ace.ui.switchMode('raw')
      await command.exec()
      return command
    }
    const first = await run()
    assert.equal(first.exitCode ?? 0, 0)
    // Earlier tests' payments are pending too (an unfinished one stays so, a paid one is credited now).
    const said = first.ui.logger.getLogs().map((l) => l.message).join('\n')
    assert.match(said, /Checked \d+ pending payment\(s\): \d+ credited, 1 expired, \d+ pending/)
    const statuses = Object.fromEntries((await db.from('payments').where('user_id', user.userId)).map((p) => [p.session_id, p.status]))
    assert.deepEqual(statuses, { [paid.id]: 'paid', [expired.id]: 'expired', [open.id]: 'pending' })
    await run()
    assert.lengthOf(await topups(user.userId), 1)
    assert.equal((await balanceAndLedger(user.userId)).balance, '8.000000000000')
  })

  test('with Stripe off, the billing page offers codes only, and checkout and the webhook refuse', async ({ assert }) => {
    stripeOff()
    const user = await payer()
    const page = await user.client.get('/dashboard/billing')
    assert.notInclude(page.body, '/dashboard/billing/checkout')
    assert.include(page.body, 'action="/dashboard/billing/redeem"')
    await user.client.post('/dashboard/billing/checkout', { amount: '20' })
    const after = await user.client.get('/dashboard/billing')
    assert.include(htmlText(after.body), 'Card payments are not available on this gateway.')
    const hook = await fetch(`${baseUrl()}/webhooks/stripe`, { method: 'POST', body: '{}' })
    assert.equal(hook.status, 404)
    assert.equal(((await hook.json()) as any).error.code, 'not_configured')
  })
})
