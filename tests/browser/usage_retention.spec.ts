import { test } from '@japa/runner'
import type { Browser, Page } from 'playwright'
import { DateTime } from 'luxon'
import env from '#start/env'
import { LAPTOP, PHONE, launchChromium, login, shoot } from '#tests/browser_page'
import { createUser } from '#actions/create_user'
import { pruneUsage } from '#actions/prune_usage'
import { clearFormThrottles } from '#services/form_throttle'
import { baseUrl, gateway, meterEvent, resetDatabase, seedChannel, seedUser } from '#tests/helpers'
import db from '@adonisjs/lucid/services/db'

/**
 * Usage log retention as people see it (USAGE_RETENTION_DAYS=31): the admin
 * Usage page's note, a pruned request's 404, the portal's note in three
 * languages; nothing pans sideways on a phone. Screenshots in
 * tmp/screenshots/usage_retention.
 */
const SHOTS = 'tmp/screenshots/usage_retention'
const shot = (page: Page, name: string) => shoot(page, SHOTS, name)

test.group('Usage log retention in a browser', (group) => {
  let browser: Browser
  let prunedId = 0
  const today = DateTime.utc().startOf('day')

  group.setup(async () => {
    await resetDatabase()
    await createUser({ email: 'retention-admin@test.local', password: 'admin-password', role: 'admin' })
    const channel = await seedChannel({ baseUrl: 'http://127.0.0.1:9/v1', models: ['*'], name: 'upstream-a' })
    const user = await seedUser({ balance: '25', email: 'retention-user@test.local' })
    await clearFormThrottles('127.0.0.1', [user.userId])
    const meter = (await gateway()).meter
    // Six weeks of traffic, a few requests a day: the first ten days are older than the 31 kept.
    for (let ago = 40; ago >= 0; ago--) {
      for (let i = 0; i < 3; i++) {
        const at = ago === 0 ? DateTime.utc().minus({ minutes: 5 + i }) : today.minus({ days: ago }).plus({ hours: 9 + i * 3 })
        meter.record({ ...meterEvent(user.userId, i === 2 ? 'gpt-4o' : 'gpt-4o-mini'), apiKeyId: user.keyId, channelId: channel.id, createdAt: at.toJSDate(), latencyMs: 300 + i * 200 })
      }
    }
    await meter.drain()
    prunedId = Number((await db.from('usage_records').orderBy('id').first()).id)
    env.set('USAGE_RETENTION_DAYS', 31)
    await pruneUsage({ keepDays: 31 })
    browser = await launchChromium()
    return async () => {
      env.set('USAGE_RETENTION_DAYS', 0)
      await browser.close()
    }
  })

  test('the admin Usage page says how long rows are kept; a pruned request is a 404 that says so', async ({ assert }) => {
    const context = await browser.newContext({ locale: 'en-US', viewport: LAPTOP })
    const page = await context.newPage()
    await login(page, 'retention-admin@test.local', 'admin-password')
    const from = today.minus({ days: 40 }).toISODate()
    await page.goto(`${baseUrl()}/admin/usage?from=${from}&to=${today.toISODate()}`)
    const note = await page.locator('[data-retention]').innerText()
    assert.include(note, 'Request rows are kept for 31 days; totals and charts cover all time.')
    // All 41 days' requests in the totals, though only the last 32 days' rows are left.
    assert.include(await page.locator('.stats').innerText(), '123')
    assert.equal(await shot(page, 'admin-usage'), PHONE.width)

    await page.goto(`${baseUrl()}/admin/usage/${prunedId}`)
    assert.include(await page.locator('h1').innerText(), `Request #${prunedId} is no longer in the log`)
    assert.equal(await shot(page, 'admin-pruned-request'), PHONE.width)
    await context.close()
  })

  test('the portal usage log has the note, in English, Vietnamese and Chinese', async ({ assert }) => {
    const context = await browser.newContext({ locale: 'en-US', viewport: LAPTOP })
    const page = await context.newPage()
    await login(page, 'retention-user@test.local', 'password123')
    for (const [locale, words] of [
      ['en', 'Requests are listed for 31 days'],
      ['vi', 'Các yêu cầu được giữ trong 31 ngày'],
      ['zh', '请求记录保留 31 天'],
    ]) {
      // The language picker's link sets the cookie.
      await page.goto(`${baseUrl()}/lang/${locale}`)
      await page.goto(`${baseUrl()}/dashboard/usage`)
      assert.include(await page.locator('[data-retention]').innerText(), words)
      assert.equal(await shot(page, `portal-usage-${locale}`), PHONE.width)
    }
    await context.close()
  })
})
