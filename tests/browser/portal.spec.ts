import { test } from '@japa/runner'
import { mkdirSync } from 'node:fs'
import type { Browser, Page } from 'playwright'
import { launchChromium } from '#tests/browser_page'
import User from '#models/user'
import { createPlan } from '#actions/create_plan'
import { setDefaultPlan } from '#actions/set_default_plan'
import { postLedgerEntry } from '#actions/post_ledger_entry'
import { clearFormThrottles } from '#services/form_throttle'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { baseUrl, refreshCaches, resetDatabase, seedChannel, seedPrice, startMock, usageRows } from '#tests/helpers'

/**
 * The user portal in Chromium (Debian's /usr/bin/chromium, headless, a
 * fresh temporary profile from Playwright, no background networking): register, create and copy a key, call the API
 * through the mock upstream, find the request in Usage logs and the charge
 * on Billing, rewrite /docs snippets with a model tag, switch to Tiếng Việt,
 * then to 简体中文.
 * Screenshots of every page at laptop and phone widths in tmp/screenshots/portal.
 */
const SHOTS = 'tmp/screenshots/portal'

async function shoot(page: Page, name: string) {
  mkdirSync(SHOTS, { recursive: true })
  await page.setViewportSize({ width: 1366, height: 900 })
  await page.screenshot({ path: `${SHOTS}/${name}-laptop.png`, fullPage: true })
  await page.screenshot({ path: `${SHOTS}/${name}-laptop-top.png` })
  await page.setViewportSize({ width: 390, height: 844 })
  await page.screenshot({ path: `${SHOTS}/${name}-phone.png`, fullPage: true })
  await page.screenshot({ path: `${SHOTS}/${name}-phone-top.png` })
  await page.setViewportSize({ width: 1366, height: 900 })
}

test.group('User portal in a browser', (group) => {
  let mock: MockUpstream
  let browser: Browser

  group.setup(async () => {
    await resetDatabase()
    await clearFormThrottles('127.0.0.1')
    mock = await startMock({ text: 'Hello from the mock' })
    await seedChannel({ name: 'mock', baseUrl: mock.url, models: ['mock-chat', 'mock-mini', 'text-embedding-3-small'] })
    await seedPrice('mock-chat', '2', '8')
    const plan = await createPlan({ name: 'starter', monthlyInputTokens: 1_000_000, monthlyOutputTokens: 200_000 })
    await setDefaultPlan(plan.id)
    await refreshCaches()
    browser = await launchChromium()
    return async () => {
      await browser.close()
      await mock.stop()
    }
  })

  test('register, create and copy a key, call the API, see usage and billing, docs tags, Vietnamese, Chinese', async ({ assert }) => {
    const context = await browser.newContext({ locale: 'en-US' })
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: baseUrl() })
    const page = await context.newPage()

    // Register
    await page.goto(`${baseUrl()}/register`)
    await shoot(page, 'register')
    const email = `browser-${Date.now()}@test.local`
    await page.locator('#f-email').fill(email)
    await page.locator('#f-password').fill('browser-password')
    await page.locator('#f-password_confirmation').fill('browser-password')
    await page.getByRole('button', { name: 'Create account' }).click()
    await page.waitForURL(`${baseUrl()}/dashboard`)
    assert.include(await page.locator('main').innerText(), 'starter')
    await shoot(page, 'overview-new')

    // An operator tops the balance up
    await postLedgerEntry({ userRef: email, kind: 'topup', amount: '5', note: 'welcome credit' })

    // Create a key, copy it
    await page.getByRole('link', { name: 'API keys' }).first().click()
    await page.locator('#f-name').fill('browser-key')
    await page.getByRole('button', { name: 'Create key' }).click()
    const key = (await page.locator('[data-new-key]').innerText()).trim()
    assert.match(key, /^sk-gw-/)
    await page.getByRole('button', { name: 'Copy' }).click()
    // Runs in the page (DOM types are not in the server's tsconfig).
    assert.equal(await page.evaluate('navigator.clipboard.readText()'), key)
    await shoot(page, 'keys-created')

    // Call the API with it
    const answer = await fetch(`${baseUrl()}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'authorization': `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'mock-chat', messages: [{ role: 'user', content: 'hello' }] }),
    })
    const body: any = await answer.json()
    assert.equal(body.choices[0].message.content, 'Hello from the mock')
    const [row] = await usageRows((await User.findByOrFail('email', email)).id)
    assert.isAbove(Number(row.cost), 0)

    // Usage logs: the request with its cost
    await page.getByRole('link', { name: 'Usage logs' }).first().click()
    const usageRow = page.locator('tr[data-usage-id]').first()
    assert.include(await usageRow.innerText(), 'mock-chat')
    assert.equal(Number(await usageRow.locator('[data-cost]').getAttribute('data-cost')), Number(row.cost))
    assert.match(await usageRow.locator('[data-cost]').innerText(), /^\$0\.\d{6}$/)
    await shoot(page, 'usage')

    // Billing: the top-up and the charge
    await page.getByRole('link', { name: 'Billing' }).first().click()
    const billing = await page.locator('main').innerText()
    assert.include(billing, 'welcome credit')
    assert.include(billing, '1 request')
    assert.equal((await page.locator('tr[data-kind="charge"] [data-amount]').getAttribute('data-amount'))?.replace(/0+$/, ''), `-${row.cost}`.replace(/0+$/, ''))
    await shoot(page, 'billing')

    // Models, security (password, two-factor sign-in), overview with traffic
    await page.getByRole('link', { name: 'Models' }).first().click()
    await shoot(page, 'models')
    await page.getByRole('link', { name: 'Security' }).first().click()
    await shoot(page, 'security')
    await page.getByRole('link', { name: 'Overview' }).first().click()
    await page.waitForSelector('#requests-per-day canvas', { timeout: 5000 })
    await shoot(page, 'overview')

    // Docs: a model tag rewrites the snippets
    await page.goto(`${baseUrl()}/docs`)
    const chatCurl = page.locator('code[data-endpoint="chat"][data-lang="curl"]')
    assert.include(await chatCurl.textContent(), '"model": "mock-chat"')
    await page.locator('.model-tag[data-model="mock-mini"]').click()
    assert.include(await chatCurl.textContent(), '"model": "mock-mini"')
    assert.include(await page.locator('code[data-endpoint="messages"][data-lang="javascript"]').textContent(), "model: 'mock-mini'")
    assert.equal(await page.locator('.model-tag[data-model="mock-mini"]').getAttribute('aria-pressed'), 'true')
    await page.getByRole('tab', { name: 'JavaScript' }).first().click()
    assert.isTrue(await page.locator('#panel-chat-javascript').isVisible())
    assert.isFalse(await page.locator('#panel-chat-curl').isVisible())
    await page.waitForFunction(`document.querySelector('[data-health="status"]')?.textContent === 'Operational'`)
    await shoot(page, 'docs')

    // Tiếng Việt
    await page.getByRole('link', { name: 'Tiếng Việt' }).click()
    await page.waitForURL(/\/docs/)
    assert.include(await page.locator('h1').innerText(), 'Tài liệu API')
    assert.equal(await page.locator('html').getAttribute('lang'), 'vi')
    await shoot(page, 'docs-vi')
    for (const [path, heading, name] of [
      ['/dashboard', 'Tổng quan', 'overview-vi'],
      ['/dashboard/keys', 'Khóa API', 'keys-vi'],
      ['/dashboard/usage', 'Nhật ký sử dụng', 'usage-vi'],
      ['/dashboard/billing', 'Thanh toán', 'billing-vi'],
      ['/dashboard/models', 'Mô hình', 'models-vi'],
      ['/status', 'Trạng thái hệ thống', 'status-vi'],
    ]) {
      await page.goto(`${baseUrl()}${path}`)
      assert.include(await page.locator('h1').innerText(), heading)
      await shoot(page, name)
    }
    assert.match(await page.locator('main').innerText(), /phiên bản/i)

    // 简体中文: the picker, then every page (CJK text has no spaces to break at)
    await page.goto(`${baseUrl()}/docs`)
    await page.getByRole('link', { name: '简体中文' }).click()
    await page.waitForURL(/\/docs/)
    assert.include(await page.locator('h1').innerText(), 'API 文档')
    assert.equal(await page.locator('html').getAttribute('lang'), 'zh-CN')
    await page.waitForFunction(`document.querySelector('[data-health="status"]')?.textContent === '运行正常'`)
    await shoot(page, 'docs-zh')
    for (const [path, heading, name] of [
      ['/dashboard', '概览', 'overview-zh'],
      ['/dashboard/keys', 'API 密钥', 'keys-zh'],
      ['/dashboard/usage', '用量日志', 'usage-zh'],
      ['/dashboard/billing', '账单', 'billing-zh'],
      ['/dashboard/models', '模型', 'models-zh'],
      ['/dashboard/security', '安全', 'security-zh'],
      ['/status', '系统状态', 'status-zh'],
    ]) {
      await page.goto(`${baseUrl()}${path}`)
      assert.include(await page.locator('h1').innerText(), heading)
      if (path === '/dashboard') {
        await page.waitForSelector('#requests-per-day canvas', { timeout: 5000 })
        // On a phone the figures stay inside their cards ("US$0.000056" is longer than "$0.000056")
        await page.setViewportSize({ width: 390, height: 844 })
        const spills = await page.evaluate(
          `[...document.querySelectorAll('.stat .value')].filter((v) => v.scrollWidth > v.clientWidth).map((v) => v.textContent)`
        )
        assert.deepEqual(spills, [], 'a stat figure spills out of its card')
        await page.setViewportSize({ width: 1366, height: 900 })
      }
      await shoot(page, name)
    }
    assert.include(await page.locator('main').innerText(), '版本')
    await context.close()

    // A browser set to Chinese (Accept-Language: zh-CN) gets the sign-in pages in Chinese
    const zhContext = await browser.newContext({ locale: 'zh-CN' })
    const zhPage = await zhContext.newPage()
    for (const [path, heading, name] of [
      ['/register', '注册账号', 'register-zh'],
      ['/login', '登录', 'login-zh'],
    ]) {
      await zhPage.goto(`${baseUrl()}${path}`)
      assert.include(await zhPage.locator('h1').innerText(), heading)
      await shoot(zhPage, name)
    }
    await zhContext.close()
  }).timeout(180_000)
})
