import { test } from '@japa/runner'
import { mkdirSync } from 'node:fs'
import { chromium, type Browser, type Page } from 'playwright'
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
const PHONE = { width: 390, height: 844 }
const LAPTOP = { width: 1366, height: 900 }

async function shoot(page: Page, name: string) {
  mkdirSync(SHOTS, { recursive: true })
  await page.setViewportSize(LAPTOP)
  await page.screenshot({ path: `${SHOTS}/${name}-laptop.png`, fullPage: true })
  await page.setViewportSize(PHONE)
  await page.screenshot({ path: `${SHOTS}/${name}-phone.png`, fullPage: true })
  const width = Number(await page.evaluate('document.documentElement.scrollWidth'))
  await page.setViewportSize(LAPTOP)
  return width
}

async function login(page: Page, email: string, password: string) {
  await page.goto(`${baseUrl()}/login`)
  await page.locator('#f-email').fill(email)
  await page.locator('#f-password').fill(password)
  await page.getByRole('button', { name: 'Log in' }).click()
  await page.waitForLoadState('load')
}

test.group('Editing keys in a browser', (group) => {
  let browser: Browser

  group.setup(async () => {
    await resetDatabase()
    await createUser({ email: 'edit-admin@test.local', password: 'admin-password', role: 'admin' })
    const { user } = await createUser({ email: 'edit-user@test.local', password: 'user-password', role: 'user' })
    await createApiKey({ userRef: user.email, name: 'laptop', spendLimit: '5' })
    await clearFormThrottles('127.0.0.1', [user.id])
    browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    })
    return () => browser.close()
  })

  test('a user sets a monthly cap on a key; an admin gives it a rate limit', async ({ assert }) => {
    const context = await browser.newContext({ locale: 'en-US', viewport: LAPTOP })
    const page = await context.newPage()
    await login(page, 'edit-user@test.local', 'user-password')
    await page.getByRole('link', { name: 'API keys' }).first().click()
    assert.equal(await shoot(page, 'portal-keys'), PHONE.width)
    await page.getByRole('button', { name: 'Edit' }).first().click()
    assert.equal(await page.locator('#f-name').inputValue(), 'laptop')
    assert.equal(await page.locator('#f-spend_limit').inputValue(), '5')
    assert.equal(await shoot(page, 'portal-edit'), PHONE.width)
    await page.locator('#f-spend_limit').fill('12.5')
    await page.locator('#f-spend_period').selectOption('month')
    await page.getByRole('button', { name: 'Save' }).click()
    await page.waitForURL(`${baseUrl()}/dashboard/keys`)
    assert.include(await page.locator('tr[data-key-id]').innerText(), '$12.50 a month')
    assert.equal(await shoot(page, 'portal-saved'), PHONE.width)
    await context.close()

    const adminContext = await browser.newContext({ locale: 'en-US', viewport: LAPTOP })
    const panel = await adminContext.newPage()
    await login(panel, 'edit-admin@test.local', 'admin-password')
    await panel.goto(`${baseUrl()}/admin/keys`)
    await panel.getByRole('link', { name: 'laptop' }).click()
    await panel.getByRole('button', { name: 'Edit' }).click()
    assert.equal(await panel.locator('#f-spendPeriod').inputValue(), 'month')
    await panel.locator('#f-rpm').fill('60')
    assert.equal(await shoot(panel, 'admin-edit'), PHONE.width)
    await panel.getByRole('button', { name: 'Save key' }).click()
    await panel.waitForURL(/\/admin\/keys\/\d+$/)
    assert.include(await panel.locator('main').innerText(), '60 RPM')
    assert.equal(await shoot(panel, 'admin-saved'), PHONE.width)
    await panel.goto(`${baseUrl()}/admin/keys/new`)
    assert.isFalse(await panel.locator('#f-manage').isChecked(), 'the management scope is never the default')
    assert.equal(await shoot(panel, 'admin-new'), PHONE.width)
    await adminContext.close()
  }).timeout(90_000)
})
