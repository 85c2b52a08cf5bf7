import { test } from '@japa/runner'
import ace from '@adonisjs/core/services/ace'
import type { Browser } from 'playwright'
import { LAPTOP, PHONE, launchChromium, login, pageWidth, shoot } from '#tests/browser_page'
import { setModelFallbacks } from '#actions/set_model_fallbacks'
import { createUser } from '#actions/create_user'
import { createPlan } from '#actions/create_plan'
import { setDefaultPlan } from '#actions/set_default_plan'
import { clearFormThrottles } from '#services/form_throttle'
import SeedDemo from '#commands/seed_demo'
import { baseUrl, refreshCaches, resetDatabase } from '#tests/helpers'

/**
 * Layout in Chromium: no page pans sideways on a phone (390 px), the docs
 * tables read on a phone, the dashboard's top tables show every column on a
 * laptop, and the language picker is styled on /login. Runs in the page
 * (DOM types are not in the server's tsconfig), hence the string scripts.
 */
test.group('Page layout in a browser', (group) => {
  let browser: Browser

  group.setup(async () => {
    await resetDatabase()
    await clearFormThrottles('127.0.0.1')
    await setDefaultPlan((await createPlan({ name: 'starter' })).id)
    await createUser({ email: 'layout-admin@test.local', password: 'admin-password', role: 'admin' })
    await createUser({ email: 'layout-user@test.local', password: 'user-password', role: 'user' })
    // Demo traffic: long e-mails and channel names in the dashboard's top tables
    const seed = await ace.create(SeedDemo, ['--users', '6', '--usage-rows', '400'])
    ace.ui.switchMode('raw')
    await seed.exec()
    await setModelFallbacks({ model: 'claude-sonnet-4*', fallbacks: ['gpt-4o', 'deepseek-chat'] })
    await refreshCaches()
    browser = await launchChromium()
    return () => browser.close()
  })

  test('no page pans sideways on a phone; docs codes stay whole and every column is on screen', async ({ assert }) => {
    const context = await browser.newContext({ locale: 'en-US', viewport: PHONE })
    const page = await context.newPage()
    await login(page, 'layout-user@test.local', 'user-password')
    await page.goto(`${baseUrl()}/dashboard/keys`)
    await page.locator('#f-name').fill('phone-key')
    await page.getByRole('button', { name: 'Create key' }).click()
    await page.waitForSelector('tr[data-key-id]')
    const portalPaths = ['/dashboard/keys', '/dashboard', '/dashboard/usage', '/dashboard/batches', '/dashboard/billing', '/dashboard/models', '/dashboard/playground', '/dashboard/password', '/docs', '/status']
    for (const path of [...portalPaths, '/login']) {
      await page.goto(`${baseUrl()}${path}`)
      assert.equal(await pageWidth(page), PHONE.width, `${path} is wider than the phone`)
    }
    // The same pages in Chinese (no spaces between words: lines break differently)
    await page.goto(`${baseUrl()}/lang/zh`)
    for (const path of portalPaths) {
      await page.goto(`${baseUrl()}${path}`)
      assert.equal(await page.locator('html').getAttribute('lang'), 'zh-CN')
      assert.equal(await pageWidth(page), PHONE.width, `${path} in Chinese is wider than the phone`)
    }
    await page.goto(`${baseUrl()}/lang/en`)

    await page.goto(`${baseUrl()}/docs#errors`)
    // A code is one line (as high as a short one), never broken into pieces
    const rect = async (selector: string) =>
      (await page.evaluate(`JSON.parse(JSON.stringify(document.querySelector(${JSON.stringify(selector)}).getBoundingClientRect()))`)) as { height: number; right: number; left: number }
    const height = async (selector: string) => (await rect(selector)).height
    assert.equal(await height('#error-insufficient_balance code'), await height('#error-overloaded code'))
    assert.equal(await height('#error-no_available_channel code'), await height('#error-overloaded code'))
    // Meaning and how to fix are on screen
    for (const cell of ['td:nth-child(3)', 'td:nth-child(4)']) {
      const { right } = await rect(`#error-invalid_api_key ${cell}`)
      assert.isAtMost(right, PHONE.width, `${cell} off screen`)
    }
    await context.close()
  }).timeout(60_000)

  test('the admin dashboard shows every column of its top tables on a laptop', async ({ assert }) => {
    const context = await browser.newContext({ locale: 'en-US', viewport: LAPTOP })
    const page = await context.newPage()
    await login(page, 'layout-admin@test.local', 'admin-password')
    await page.goto(`${baseUrl()}/admin`)
    const clipped = await page.evaluate(
      `[...document.querySelectorAll('.table-wrap')].filter((w) => w.scrollWidth > w.clientWidth).length`
    )
    assert.equal(clipped, 0, 'a table scrolls inside its box')
    assert.equal(await page.locator('.table-wrap').count() >= 3, true)
    await page.setViewportSize(PHONE)
    for (const path of ['/admin', '/admin/keys', '/admin/users', '/admin/usage', '/admin/batches', '/admin/channels', '/admin/redemptions', '/admin/plans']) {
      await page.goto(`${baseUrl()}${path}`)
      assert.equal(await pageWidth(page), PHONE.width, `${path} is wider than the phone`)
    }
    await page.goto(`${baseUrl()}/admin/channels#fallbacks`)
    assert.equal(await shoot(page, 'tmp/screenshots/layout', 'channels-fallbacks'), PHONE.width)
    await context.close()
  }).timeout(60_000)

  test('the language picker on /login is styled like in the portal', async ({ assert }) => {
    const context = await browser.newContext({ locale: 'en-US', viewport: LAPTOP })
    const page = await context.newPage()
    await page.goto(`${baseUrl()}/login`)
    const style = (selector: string, property: string) =>
      page.evaluate(`getComputedStyle(document.querySelector(${JSON.stringify(selector)})).${property}`)
    assert.equal(await style('.language-picker', 'display'), 'flex')
    assert.notEqual(await style('.language-picker a[aria-current="true"]', 'backgroundColor'), 'rgba(0, 0, 0, 0)')
    // The names do not run together
    const names = (await page.evaluate(
      `[...document.querySelectorAll('.language-picker a')].map((a) => JSON.parse(JSON.stringify(a.getBoundingClientRect())))`
    )) as Array<{ right: number; left: number }>
    assert.lengthOf(names, 3)
    for (let i = 1; i < names.length; i++) assert.isAbove(names[i].left - names[i - 1].right, 1)
    await context.close()
  })
})
