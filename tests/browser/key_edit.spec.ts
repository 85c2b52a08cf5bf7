import { test } from '@japa/runner'
import type { Browser, Page } from 'playwright'
import { LAPTOP, PHONE, launchChromium, login, shoot } from '#tests/browser_page'
import { createUser } from '#actions/create_user'
import { createApiKey } from '#actions/issue_api_key'
import { clearFormThrottles } from '#services/form_throttle'
import { baseUrl, resetDatabase } from '#tests/helpers'

/**
 * Editing a key in Chromium, in the portal and in the panel: the forms come
 * filled in, a saved cap shows in the lists, and no page pans sideways on a
 * phone. Screenshots in tmp/screenshots/key_edit.
 */
const SHOTS = 'tmp/screenshots/key_edit'
const shot = (page: Page, name: string) => shoot(page, SHOTS, name)

test.group('Editing keys in a browser', (group) => {
  let browser: Browser

  group.setup(async () => {
    await resetDatabase()
    await createUser({ email: 'edit-admin@test.local', password: 'admin-password', role: 'admin' })
    const { user } = await createUser({ email: 'edit-user@test.local', password: 'user-password', role: 'user' })
    await createApiKey({ userRef: user.email, name: 'laptop', spendLimit: '5' })
    await clearFormThrottles('127.0.0.1', [user.id])
    browser = await launchChromium()
    return () => browser.close()
  })

  test('a user sets a monthly cap on a key; an admin gives it a rate limit', async ({ assert }) => {
    const context = await browser.newContext({ locale: 'en-US', viewport: LAPTOP })
    const page = await context.newPage()
    await login(page, 'edit-user@test.local', 'user-password')
    await page.getByRole('link', { name: 'API keys' }).first().click()
    assert.equal(await shot(page, 'portal-keys'), PHONE.width)
    await page.getByRole('button', { name: 'Edit' }).first().click()
    assert.equal(await page.locator('#f-name').inputValue(), 'laptop')
    assert.equal(await page.locator('#f-spend_limit').inputValue(), '5')
    assert.equal(await shot(page, 'portal-edit'), PHONE.width)
    await page.locator('#f-spend_limit').fill('12.5')
    await page.locator('#f-spend_period').selectOption('month')
    await page.getByRole('button', { name: 'Save' }).click()
    await page.waitForURL(`${baseUrl()}/dashboard/keys`)
    assert.include(await page.locator('tr[data-key-id]').innerText(), '$12.50 a month')
    assert.equal(await shot(page, 'portal-saved'), PHONE.width)
    await context.close()

    const adminContext = await browser.newContext({ locale: 'en-US', viewport: LAPTOP })
    const panel = await adminContext.newPage()
    await login(panel, 'edit-admin@test.local', 'admin-password')
    await panel.goto(`${baseUrl()}/admin/keys`)
    await panel.getByRole('link', { name: 'laptop' }).click()
    await panel.getByRole('button', { name: 'Edit' }).click()
    assert.equal(await panel.locator('#f-spendPeriod').inputValue(), 'month')
    await panel.locator('#f-rpm').fill('60')
    assert.equal(await shot(panel, 'admin-edit'), PHONE.width)
    await panel.getByRole('button', { name: 'Save key' }).click()
    await panel.waitForURL(/\/admin\/keys\/\d+$/)
    assert.include(await panel.locator('main').innerText(), '60 RPM')
    assert.equal(await shot(panel, 'admin-saved'), PHONE.width)
    await panel.goto(`${baseUrl()}/admin/keys/new`)
    assert.isFalse(await panel.locator('#f-manage').isChecked(), 'the management scope is never the default')
    assert.equal(await shot(panel, 'admin-new'), PHONE.width)
    await adminContext.close()
  }).timeout(90_000)
})
