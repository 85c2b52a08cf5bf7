import { test } from '@japa/runner'
import type { Browser, Page } from 'playwright'
import { LAPTOP, PHONE, launchChromium, login, shoot } from '#tests/browser_page'
import { createUser } from '#actions/create_user'
import { clearFormThrottles } from '#services/form_throttle'
import { baseUrl, resetDatabase } from '#tests/helpers'

/**
 * Redemption codes in Chromium: an admin makes a batch on the panel and
 * copies a code from the page; a user types it on Billing and sees the
 * top-up; neither page pans sideways on a phone. Screenshots at laptop and
 * phone widths in tmp/screenshots/redemptions.
 */
const SHOTS = 'tmp/screenshots/redemptions'
const shot = (page: Page, name: string) => shoot(page, SHOTS, name)

test.group('Redemption codes in a browser', (group) => {
  let browser: Browser

  group.setup(async () => {
    await resetDatabase()
    await createUser({ email: 'codes-admin@test.local', password: 'admin-password', role: 'admin' })
    const { user } = await createUser({ email: 'codes-user@test.local', password: 'user-password', role: 'user' })
    await clearFormThrottles('127.0.0.1', [user.id])
    browser = await launchChromium()
    return () => browser.close()
  })

  test('an admin makes codes, a user redeems one on Billing', async ({ assert }) => {
    const adminContext = await browser.newContext({ locale: 'en-US', viewport: LAPTOP })
    const admin = await adminContext.newPage()
    await login(admin, 'codes-admin@test.local', 'admin-password')
    // Billing, then its Codes page (the nav's groups)
    await admin.getByRole('link', { name: 'Billing', exact: true }).first().click()
    await admin.getByRole('link', { name: 'Codes' }).first().click()
    await admin.getByRole('button', { name: 'New batch' }).click()
    assert.equal(await shot(admin, 'admin-new'), PHONE.width)
    await admin.locator('#f-batch').fill('launch-week')
    await admin.locator('#f-perCode').fill('12.50')
    await admin.locator('#f-count').fill('3')
    await admin.locator('#f-expiresInDays').fill('30')
    await admin.getByRole('button', { name: 'Make codes' }).click()
    const codes = (await admin.locator('textarea[data-codes]').inputValue()).trim().split('\n')
    assert.lengthOf(codes, 3)
    const download = admin.getByRole('button', { name: 'Download as a text file' })
    assert.equal(await download.getAttribute('download'), 'launch-week-codes.txt')
    assert.equal(decodeURIComponent((await download.getAttribute('href'))!.split(',')[1]), codes.join('\n') + '\n')
    assert.isTrue(await admin.getByRole('button', { name: 'Copy all' }).isVisible())
    assert.equal(await shot(admin, 'admin-created'), PHONE.width)

    const userContext = await browser.newContext({ locale: 'en-US', viewport: LAPTOP })
    const user = await userContext.newPage()
    await login(user, 'codes-user@test.local', 'user-password')
    await user.getByRole('link', { name: 'Billing' }).first().click()
    assert.equal(await shot(user, 'billing-before'), PHONE.width)
    // Typed as a person might: lower case, spaces for dashes.
    await user.locator('#f-code').fill(codes[0].toLowerCase().replace(/-/g, ' '))
    await user.getByRole('button', { name: 'Redeem' }).click()
    await user.waitForURL(`${baseUrl()}/dashboard/billing`)
    const main = await user.locator('main').innerText()
    assert.include(main, '$12.50 was added to your balance')
    assert.include(await user.locator('tr[data-kind="topup"]').innerText(), 'Redemption code')
    assert.equal(await shot(user, 'billing-redeemed'), PHONE.width)

    await user.locator('#f-code').fill('not a code')
    await user.getByRole('button', { name: 'Redeem' }).click()
    await user.waitForSelector('[aria-invalid="true"]#f-code')
    assert.include(await user.locator('main').innerText(), 'This is not a redemption code')
    assert.equal(await shot(user, 'billing-error'), PHONE.width)

    await admin.goto(`${baseUrl()}/admin/redemptions`)
    assert.include(await admin.locator('tr[data-batch="launch-week"]').innerText(), '$25.00')
    assert.equal(await admin.locator('tr[data-status="redeemed"]').count(), 1)
    assert.equal(await shot(admin, 'admin-index'), PHONE.width)
    await adminContext.close()
    await userContext.close()
  }).timeout(90_000)
})
