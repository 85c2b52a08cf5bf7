import { test } from '@japa/runner'
import type { Browser } from 'playwright'
import { launchChromium, login } from '#tests/browser_page'
import { createUser } from '#actions/create_user'
import { clearFormThrottles } from '#services/form_throttle'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { baseUrl, resetDatabase, seedChannel, startMock } from '#tests/helpers'

/**
 * The channel model lists and Test all in Chromium, under the pages' strict
 * CSP (a violation fails the test, tests/bootstrap.ts): the new-channel
 * form's preview puts a ticked id into Models; the Models upstream page's
 * filter and "not served" selection; Test all's results on the list.
 */
test.group('Channel model lists in a browser', (group) => {
  let browser: Browser
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    await clearFormThrottles('127.0.0.1')
    mock = await startMock()
    await createUser({ email: 'models-admin@test.local', password: 'admin-password', role: 'admin' })
    browser = await launchChromium()
    return async () => {
      await browser.close()
      await mock.stop()
    }
  })

  test('new channel: Fetch models lists the typed upstream, a ticked id goes into Models', async ({ assert }) => {
    const page = await browser.newPage()
    await login(page, 'models-admin@test.local', 'admin-password')
    await page.goto(`${baseUrl()}/admin/channels/new`)
    await page.locator('#f-provider').selectOption('anthropic')
    await page.locator('#f-baseUrl').fill(mock.url)
    await page.locator('#f-apiKey').fill('sk-typed-in-form')
    await page.locator('#f-models').fill('claude-mock-haiku')
    await page.locator('[data-models-fetch]').click()
    await page.locator('[data-models-list] label').first().waitFor()
    assert.include(await page.locator('[data-models-status]').textContent(), '3 models upstream, 2 not served')
    await page.locator('[data-models-list] label', { hasText: 'claude-mock-opus' }).locator('input').check()
    assert.equal(await page.locator('#f-models').inputValue(), 'claude-mock-haiku, claude-mock-opus')
    await page.locator('[data-models-list] label', { hasText: 'claude-mock-haiku' }).locator('input').uncheck()
    assert.equal(await page.locator('#f-models').inputValue(), 'claude-mock-opus')
    assert.equal(mock.lastRequest()!.headers['x-api-key'], 'sk-typed-in-form')
    await page.close()
  })

  test('channel page: Fetch models, filter, select those not served, save; Test all shows results', async ({ assert }) => {
    const channel = await seedChannel({ name: 'picked', baseUrl: mock.url, models: ['mock-*'] })
    const page = await browser.newPage()
    await login(page, 'models-admin@test.local', 'admin-password')
    await page.goto(`${baseUrl()}/admin/channels/${channel.id}`)
    await page.locator('#upstream-models button[type="submit"]').click()
    await page.waitForURL(`**/admin/channels/${channel.id}/models`)
    await page.locator('[data-model-filter]').fill('gpt')
    assert.equal(await page.locator('[data-model-row]:visible').count(), 1)
    await page.locator('[data-model-filter]').fill('')
    await page.locator('[data-model-select="unserved"]').click()
    assert.deepEqual(await page.locator('input[name="models[]"]:checked').evaluateAll((boxes) => boxes.map((b: any) => b.value)), ['gpt-4o-mini'])
    await page.locator('form[data-model-picker] button[type="submit"]').click()
    await page.waitForURL(`**/admin/channels/${channel.id}`)
    assert.include(await page.locator('.flash--success').textContent(), '1 models added')
    assert.equal(await page.locator('#f-models').inputValue(), 'mock-*, gpt-4o-mini')

    await page.goto(`${baseUrl()}/admin/channels`)
    await page.locator('form[action="/admin/channels/test-all"] button').click()
    await page.locator('[data-testid="test-all-summary"]').waitFor()
    assert.include(await page.locator('[data-testid="test-all-summary"]').textContent(), '1 passed, 0 failed')
    assert.include(await page.locator(`[data-testid="test-result-${channel.id}"]`).textContent(), 'OK')
    // The results page is the list reached by a redirect: reloading it sends no form again and tests nothing again.
    assert.equal(new URL(page.url()).pathname, '/admin/channels')
    const generations = mock.requests.filter((r) => r.method === 'POST').length
    await page.reload()
    assert.equal(await page.locator('[data-testid="test-all-summary"]').count(), 0)
    assert.equal(mock.requests.filter((r) => r.method === 'POST').length, generations)
    await page.close()
  })
})
