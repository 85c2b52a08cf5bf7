import { test } from '@japa/runner'
import type { Browser, Page } from 'playwright'
import { LAPTOP, launchChromium, login, shoot, takeCspViolations } from '#tests/browser_page'
import { createUser } from '#actions/create_user'
import { createApiKey } from '#actions/issue_api_key'
import { postLedgerEntry } from '#actions/post_ledger_entry'
import { clearFormThrottles } from '#services/form_throttle'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { baseUrl, refreshCaches, resetDatabase, seedChannel, seedPrice, startMock } from '#tests/helpers'

/**
 * The pages' Content-Security-Policy (config/shield.ts) in Chromium: the
 * inline scripts that carry the request's nonce run, the /assets scripts run
 * (charts drawn), a script injected without the nonce and an inline event
 * handler are refused and reported, and the key pages load without a single
 * violation (launchChromium fails the browser's close on any left unclaimed).
 * Screenshots in tmp/screenshots/csp.
 */
const SHOTS = 'tmp/screenshots/csp'

/**
 * Runs `inject` in the page and resolves with the first
 * securitypolicyviolation it causes (runs in the page: DOM types are not in
 * the server's tsconfig, hence the string).
 */
async function violationOf(page: Page, inject: string) {
  return (await page.evaluate(`new Promise((resolve) => {
    document.addEventListener('securitypolicyviolation', (e) => resolve({ directive: e.effectiveDirective, blocked: e.blockedURI, disposition: e.disposition }), { once: true })
    ${inject}
  })`)) as { directive: string; blocked: string; disposition: string }
}

test.group('Content-Security-Policy in a browser', (group) => {
  let browser: Browser
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock({ text: 'Hello from the mock' })
    browser = await launchChromium()
    const cleanup = async () => {
      await mock.stop()
      await browser.close()
    }
    try {
      await seedChannel({ name: 'mock', baseUrl: mock.url, models: ['mock-chat'] })
      await seedPrice('mock-chat', '2', '8')
      await refreshCaches()
      await createUser({ email: 'csp-admin@test.local', password: 'admin-password', role: 'admin' })
      const { user } = await createUser({ email: 'csp-user@test.local', password: 'user-password', role: 'user' })
      const { key } = await createApiKey({ userRef: user.email, name: 'laptop' })
      await postLedgerEntry({ userRef: user.email, kind: 'topup', amount: '5', note: 'credit' })
      await clearFormThrottles('127.0.0.1', [user.id])
      // One request, so the dashboards have a chart to draw.
      const answer = await fetch(`${baseUrl()}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'authorization': `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'mock-chat', messages: [{ role: 'user', content: 'hello' }] }),
      })
      if (answer.status !== 200) throw new Error(`chat completion: ${answer.status} ${await answer.text()}`)
    } catch (error) {
      await cleanup()
      throw error
    }
    return cleanup
  })

  test('an inline script with the nonce runs; one injected without it and an inline handler are refused and reported', async ({ assert }) => {
    const context = await browser.newContext({ locale: 'en-US', viewport: LAPTOP })
    const page = await context.newPage()
    await login(page, 'csp-admin@test.local', 'admin-password')
    const answer = await page.goto(`${baseUrl()}/admin/prices`)
    assert.match(answer!.headers()['content-security-policy'], /script-src 'self' 'nonce-[^']+'/)

    // The price preview is the page's inline script: it rewrites the text as the prices are typed.
    await page.locator('#f-input').fill('2')
    await page.locator('#f-output').fill('3.5')
    assert.equal(await page.locator('#price-preview').innerText(), 'Preview: 1M input + 1M output tokens cost $5.50.')
    assert.deepEqual(takeCspViolations(browser), [])

    // page.evaluate runs as DevTools, outside the CSP; the script element it adds does not.
    const script = await violationOf(
      page,
      `const s = document.createElement('script'); s.textContent = 'document.body.dataset.injected = "ran"'; document.body.append(s)`
    )
    assert.deepEqual(script, { directive: 'script-src-elem', blocked: 'inline', disposition: 'enforce' })
    assert.isUndefined(await page.evaluate('document.body.dataset.injected'))

    const handler = await violationOf(
      page,
      `const b = document.createElement('button'); b.setAttribute('onclick', 'document.body.dataset.clicked = "ran"'); document.body.append(b); b.click()`
    )
    assert.deepEqual(handler, { directive: 'script-src-attr', blocked: 'inline', disposition: 'enforce' })
    assert.isUndefined(await page.evaluate('document.body.dataset.clicked'))

    const reported = takeCspViolations(browser)
    assert.lengthOf(reported, 2)
    assert.match(reported[0], /Executing inline script violates the following Content Security Policy directive 'script-src 'self' 'nonce-/)
    assert.match(reported[1], /Executing inline event handler violates the following Content Security Policy directive 'script-src-attr 'none''/)
    await context.close()
  }).timeout(60_000)

  test('the key pages load under the policy, their scripts run, at a laptop and a phone width', async ({ assert }) => {
    const context = await browser.newContext({ locale: 'en-US', viewport: LAPTOP })
    const page = await context.newPage()

    await page.goto(`${baseUrl()}/login`)
    await shoot(page, SHOTS, 'login')
    // The docs page's inline script: one language tab shown per endpoint (all three without it).
    await page.goto(`${baseUrl()}/docs`)
    assert.isAbove(await page.locator('[role=tabpanel][data-lang=curl]:visible').count(), 0)
    assert.equal(await page.locator('[role=tabpanel][data-lang=python]:visible').count(), 0)
    await shoot(page, SHOTS, 'docs')

    await login(page, 'csp-admin@test.local', 'admin-password')
    await page.goto(`${baseUrl()}/admin`)
    // charts.js and uPlot (from /assets) drew the dashboard's chart.
    await page.locator('.uplot').first().waitFor()
    await shoot(page, SHOTS, 'admin-dashboard')
    await page.goto(`${baseUrl()}/admin/usage`)
    await page.locator('.uplot').first().waitFor()
    await page.goto(`${baseUrl()}/admin/prices`)
    await shoot(page, SHOTS, 'admin-prices')
    await context.close()

    const userContext = await browser.newContext({ locale: 'en-US', viewport: LAPTOP })
    const user = await userContext.newPage()
    await login(user, 'csp-user@test.local', 'user-password')
    await user.goto(`${baseUrl()}/dashboard`)
    await user.locator('.uplot').first().waitFor()
    await shoot(user, SHOTS, 'portal-overview')
    await user.goto(`${baseUrl()}/dashboard/keys`)
    await shoot(user, SHOTS, 'portal-keys')
    await user.goto(`${baseUrl()}/dashboard/security`)
    await shoot(user, SHOTS, 'portal-security')
    await userContext.close()
    assert.deepEqual(takeCspViolations(browser), [])
  }).timeout(90_000)
})
