import { test } from '@japa/runner'
import type { Browser, Page } from 'playwright'
import { LAPTOP, PHONE, launchChromium, login, shoot } from '#tests/browser_page'
import { createUser } from '#actions/create_user'
import { postLedgerEntry } from '#actions/post_ledger_entry'
import { setReferralTerms } from '#actions/referrals'
import { cliActor } from '#actions/audit'
import { clearFormThrottles } from '#services/form_throttle'
import { baseUrl, resetDatabase } from '#tests/helpers'
import db from '@adonisjs/lucid/services/db'

/**
 * Referrals in Chromium: a user copies their link from Billing, a friend
 * opens it, is told of the welcome credit and signs up; after the friend's
 * first top-up the inviter's Billing shows the reward. Screenshots at laptop
 * and phone widths in tmp/screenshots/referrals.
 */
const SHOTS = 'tmp/screenshots/referrals'
const shot = (page: Page, name: string) => shoot(page, SHOTS, name)

test.group('Referrals in a browser', (group) => {
  let browser: Browser

  group.setup(async () => {
    await resetDatabase()
    await db.from('app_settings').delete()
    await clearFormThrottles('127.0.0.1')
    await createUser({ email: 'host@test.local', password: 'host-password' })
    await createUser({ email: 'ref-admin@test.local', password: 'admin-password', role: 'admin' })
    await setReferralTerms({ inviterCredit: '5', inviteeCredit: '1' }, cliActor())
    browser = await launchChromium()
    return async () => {
      await browser.close()
      await db.from('app_settings').delete()
    }
  })

  test('a link from Billing signs a friend up with a welcome credit; their first top-up rewards the inviter', async ({ assert }) => {
    const hostContext = await browser.newContext({ locale: 'en-US', viewport: LAPTOP })
    const host = await hostContext.newPage()
    await login(host, 'host@test.local', 'host-password')
    await host.getByRole('link', { name: 'Billing' }).first().click()
    const section = host.locator('[data-referrals]')
    assert.include(await section.innerText(), 'whoever signs up with it gets $1.00 to start, and you get $5.00 when they first add funds')
    const link = (await host.locator('[data-referral-link]').innerText()).trim()
    assert.isTrue(link.startsWith(`${baseUrl()}/register?ref=`))
    assert.equal(await shot(host, 'billing-inviter'), PHONE.width)

    const friendContext = await browser.newContext({ locale: 'en-US', viewport: LAPTOP })
    const friend = await friendContext.newPage()
    await friend.goto(link)
    assert.include(await friend.locator('[data-welcome-credit]').innerText(), 'your balance starts with $1.00')
    assert.equal(await shot(friend, 'register-invited'), PHONE.width)
    await friend.locator('#f-email').fill('friend@test.local')
    await friend.locator('#f-password').fill('friend-password')
    await friend.locator('#f-password_confirmation').fill('friend-password')
    await friend.getByRole('button', { name: 'Create account' }).click()
    await friend.waitForURL(`${baseUrl()}/dashboard`)
    await friend.getByRole('link', { name: 'Billing' }).first().click()
    assert.include(await friend.locator('tr[data-kind="adjustment"]').innerText(), 'Welcome credit')

    await postLedgerEntry({ userRef: 'friend@test.local', kind: 'topup', amount: '20' })
    await host.reload()
    const table = await host.locator('table[data-table="referrals"]').innerText()
    assert.include(table, 'fr…@test.local')
    assert.include(table, '$5.00')
    assert.include(await host.locator('tr[data-kind="adjustment"]').innerText(), 'Referral reward')
    assert.equal(await shot(host, 'billing-rewarded'), PHONE.width)

    const adminContext = await browser.newContext({ locale: 'en-US', viewport: LAPTOP })
    const admin = await adminContext.newPage()
    await login(admin, 'ref-admin@test.local', 'admin-password')
    await admin.goto(`${baseUrl()}/admin/settings`)
    assert.equal(await admin.locator('#f-inviterCredit').inputValue(), '5')
    assert.equal(await shot(admin, 'admin-settings'), PHONE.width)
  })
})
