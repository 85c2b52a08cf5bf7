import { test } from '@japa/runner'
import { mkdirSync } from 'node:fs'
import type { Page } from 'playwright'
import db from '@adonisjs/lucid/services/db'
import { createUser } from '#actions/create_user'
import { baseUrl, refreshCaches, resetDatabase, startMock, usageRows } from '#tests/helpers'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'

const SHOTS = 'tmp/screenshots/browser'

/** Saves the page at a laptop and a phone width (tmp/, not committed). */
async function shoot(page: Page, name: string) {
  mkdirSync(SHOTS, { recursive: true })
  await page.setViewportSize({ width: 1366, height: 900 })
  await page.screenshot({ path: `${SHOTS}/${name}-laptop.png`, fullPage: true })
  await page.setViewportSize({ width: 390, height: 844 })
  await page.screenshot({ path: `${SHOTS}/${name}-phone.png`, fullPage: true })
  await page.setViewportSize({ width: 1366, height: 900 })
}

function chat(key: string) {
  return fetch(`${baseUrl()}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'authorization': `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hello' }] }),
  })
}

test.group('Admin panel in a browser', (group) => {
  let mock: MockUpstream
  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    return () => mock.stop()
  })

  test('an operator sets up a paying user end to end, follows the request, then revokes the key', async ({ visit, browserContext, assert }) => {
    await createUser({ email: 'admin@localhost', password: 'first-admin-pw', role: 'admin' })
    const page = await visit(`${baseUrl()}/login`)
    await shoot(page, 'login')
    await page.getByLabel('Email').fill('admin@localhost')
    await page.getByLabel('Password').fill('first-admin-pw')
    await page.getByRole('button', { name: 'Log in' }).click()
    await page.waitForURL(`${baseUrl()}/admin`)
    await shoot(page, 'dashboard-empty')

    // A plan
    await page.goto(`${baseUrl()}/admin/plans/new`)
    await page.getByLabel('Name').fill('browser-pro')
    await page.getByLabel('Allowed models (globs)').fill('gpt-*')
    await page.getByLabel('Requests per minute (per key)').fill('100')
    await page.getByRole('button', { name: 'Create plan' }).click()
    await page.waitForURL(`${baseUrl()}/admin/plans`)
    assert.include(await page.locator('main').innerText(), 'browser-pro')
    await shoot(page, 'plans')

    // A user on it
    await page.goto(`${baseUrl()}/admin/users/new`)
    await page.getByLabel('Email').fill('buyer@test.local')
    await page.getByLabel('Password').fill('buyer-password')
    await page.getByLabel('Plan').selectOption({ label: 'browser-pro' })
    await page.getByRole('button', { name: 'Create user' }).click()
    await page.waitForURL(/\/admin\/users\/\d+$/)
    const userUrl = page.url()

    // A channel pointing at the mock upstream, then its Test action
    await page.goto(`${baseUrl()}/admin/channels/new`)
    await page.getByLabel('Name').fill('mock-upstream')
    await page.getByLabel('Provider kind').selectOption('custom')
    await page.getByLabel('Base URL').fill(mock.url)
    await page.getByLabel('Upstream API key').fill('sk-upstream-9876')
    await page.getByLabel('Models (globs)').fill('gpt-*')
    await page.getByRole('button', { name: 'Create channel' }).click()
    await page.waitForURL(/\/admin\/channels\/\d+$/)
    assert.notInclude(await page.content(), 'sk-upstream-9876')
    await page.getByLabel('Model', { exact: true }).fill('gpt-4o-mini')
    await page.getByRole('button', { name: 'Run test' }).click()
    await page.waitForSelector('[data-testid="test-result"]')
    assert.match(await page.locator('[data-testid="test-result"]').innerText(), /OK — gpt-4o-mini/)
    await shoot(page, 'channel')

    // A price
    await page.goto(`${baseUrl()}/admin/prices`)
    await page.getByLabel('Model glob').fill('gpt-4o-mini')
    await page.getByLabel('Input, USD / 1M tokens').fill('1000')
    await page.getByLabel('Output, USD / 1M tokens').fill('2000')
    await page.getByRole('button', { name: 'Save price' }).click()
    await page.waitForURL(`${baseUrl()}/admin/prices`)
    assert.include(await page.locator('table').innerText(), '$3,000.00')
    await shoot(page, 'prices')

    // Top the user up
    await page.goto(userUrl)
    await page.getByLabel('Amount (USD)').fill('10')
    await page.getByLabel('Note').fill('browser test')
    await page.getByRole('button', { name: 'Post entry' }).click()
    await page.waitForSelector('text=balance is now $10.00')

    // A key, read from the page once
    await page.goto(`${baseUrl()}/admin/keys/new`)
    await page.getByLabel('Owner (email or user id)').fill('buyer@test.local')
    await page.getByLabel('Name', { exact: true }).fill('browser')
    await page.getByRole('button', { name: 'Issue key' }).click()
    await page.waitForSelector('[data-testid="new-key"]')
    const key = (await page.locator('[data-testid="new-key"]').innerText()).trim()
    assert.match(key, /^sk-/)
    await shoot(page, 'key-created')

    // The key works against the API
    await refreshCaches()
    const answer = await chat(key)
    assert.equal(answer.status, 200)
    const user = await db.from('users').where('email', 'buyer@test.local').first()
    const [row] = await usageRows(user.id)
    assert.isAbove(Number(row.cost), 0)

    // Usage shows it with its cost; the detail tells its story
    await page.goto(`${baseUrl()}/admin/usage?user=buyer@test.local`)
    const usageText = await page.locator('.table-wrap > table').last().innerText()
    assert.include(usageText, 'gpt-4o-mini')
    assert.include(usageText, 'mock-upstream')
    // 12 prompt tokens x $1000/M + 5 completion tokens x $2000/M
    assert.equal(Number(row.cost), 0.022)
    assert.include(usageText, '$0.022000', 'a request\'s cost: 6 decimals, like the whole column')
    await shoot(page, 'usage')
    await page.locator(`a[href="/admin/usage/${row.id}"]`).click()
    await page.waitForURL(`${baseUrl()}/admin/usage/${row.id}`)
    const detail = await page.locator('main').innerText()
    assert.include(detail, row.request_id)
    assert.match(detail, /Charged\s+-\$0\.022 \(ledger/)
    await shoot(page, 'usage-detail')

    // The charge is in the user's ledger
    await page.goto(userUrl)
    assert.include(await page.locator('main').innerText(), 'charge')
    await shoot(page, 'user')

    // CSV export carries the row
    const cookies = (await browserContext.cookies()).map((c) => `${c.name}=${c.value}`).join('; ')
    const csv = await fetch(`${baseUrl()}/admin/usage/export.csv?user=buyer@test.local`, { headers: { cookie: cookies } })
    const lines = (await csv.text()).trim().split('\n')
    assert.lengthOf(lines, 2)
    assert.include(lines[1], row.request_id)

    // Revoke (with its confirmation) and the API answers 401
    await page.goto(`${baseUrl()}/admin/keys`)
    await page.locator('summary', { hasText: 'Revoke' }).first().click()
    await page.getByRole('button', { name: 'Yes, revoke' }).click()
    await page.waitForSelector('text=revoked.')
    await shoot(page, 'keys')
    await refreshCaches()
    assert.equal((await chat(key)).status, 401)

    await page.goto(`${baseUrl()}/admin`)
    await shoot(page, 'dashboard')
    await page.goto(`${baseUrl()}/admin/audit`)
    assert.include(await page.locator('table').innerText(), 'key.revoke')
    await shoot(page, 'audit')
  }).timeout(120_000)
})
