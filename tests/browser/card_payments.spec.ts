import { test } from '@japa/runner'
import type { Browser, Page } from 'playwright'
import env from '#start/env'
import { LAPTOP, PHONE, launchChromium, login, shoot } from '#tests/browser_page'
import { createUser } from '#actions/create_user'
import { MockStripe } from '#tests/fixtures/mock_stripe'
import { baseUrl, resetDatabase } from '#tests/helpers'

/**
 * A card top-up in Chromium: Billing's "Pay by card" form, Stripe's page
 * (the mock's stand-in), back to Billing with the balance updated; the
 * admin's Payments page. Screenshots at laptop and phone widths in
 * tmp/screenshots/payments.
 */
const SHOTS = 'tmp/screenshots/payments'
const shot = (page: Page, name: string) => shoot(page, SHOTS, name)

test.group('Card top-ups in a browser', (group) => {
  let browser: Browser
  let stripe: MockStripe

  group.setup(async () => {
    await resetDatabase()
    stripe = await new MockStripe().start()
    env.set('STRIPE_SECRET_KEY', stripe.secretKey)
    env.set('STRIPE_API_BASE', stripe.url)
    env.set('STRIPE_WEBHOOK_SECRET', '')
    await createUser({ email: 'pay-admin@test.local', password: 'admin-password', role: 'admin' })
    await createUser({ email: 'pay-user@test.local', password: 'user-password', role: 'user' })
    browser = await launchChromium()
    return async () => {
      env.set('STRIPE_SECRET_KEY', '')
      env.set('STRIPE_API_BASE', '')
      await browser.close()
      await stripe.stop()
    }
  })

  test('a user pays by card and comes back to a balance that has the money', async ({ assert }) => {
    const context = await browser.newContext({ locale: 'en-US', viewport: LAPTOP })
    const user = await context.newPage()
    await login(user, 'pay-user@test.local', 'user-password')
    await user.getByRole('link', { name: 'Billing' }).first().click()
    assert.equal(await shot(user, 'billing-card'), PHONE.width)

    await user.locator('#f-amount').fill('3')
    await user.getByRole('button', { name: 'Continue to payment' }).click()
    await user.waitForSelector('[aria-invalid="true"]#f-amount')
    assert.include(await user.locator('main').innerText(), 'Enter an amount from $5.00 to $1,000.00.')
    assert.equal(await shot(user, 'billing-card-error'), PHONE.width)

    await user.locator('#f-amount').fill('42.50')
    await user.getByRole('button', { name: 'Continue to payment' }).click()
    await user.waitForURL(`${stripe.url}/c/pay/**`)
    assert.include(await user.locator('h1').innerText(), 'Pay $42.50')
    await user.getByRole('button', { name: 'Pay' }).click()
    await user.waitForURL(`${baseUrl()}/dashboard/billing`)
    const main = await user.locator('main').innerText()
    assert.include(main, 'Payment received: $42.50 was added to your balance.')
    assert.include(await user.locator('tr[data-kind="topup"]').innerText(), 'Card payment')
    assert.include(await user.locator('tr[data-payment-status="paid"]').innerText(), 'Paid')
    assert.equal(await shot(user, 'billing-paid'), PHONE.width)

    const admin = await (await browser.newContext({ locale: 'en-US', viewport: LAPTOP })).newPage()
    await login(admin, 'pay-admin@test.local', 'admin-password')
    // Billing, then its Payments page (the nav's groups)
    await admin.getByRole('link', { name: 'Billing', exact: true }).first().click()
    await admin.getByRole('link', { name: 'Payments' }).first().click()
    assert.include(await admin.locator('tr[data-status="paid"]').innerText(), 'pay-user@test.local')
    assert.equal(await shot(admin, 'admin-payments'), PHONE.width)
    await context.close()
  }).timeout(90_000)
})
