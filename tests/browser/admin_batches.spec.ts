import { randomUUID } from 'node:crypto'
import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import type { Browser } from 'playwright'
import { createUser } from '#actions/create_user'
import { GEMINI_EMBED_BATCH_ENDPOINT, insertObject } from '#gateway/batches/batch_store'
import { LAPTOP, PHONE, launchChromium, login, pageWidth } from '#tests/browser_page'
import { baseUrl, resetDatabase, seedUser } from '#tests/helpers'

/**
 * The panel's Batches list: on a phone the owner and status go under the
 * batch's id, so the Cost column stays in its box (with three columns a
 * long id and e-mail pushed it out of sight, to be scrolled to sideways).
 */
test.group('Admin batches in a browser', (group) => {
  let browser: Browser

  group.setup(async () => {
    await resetDatabase()
    await createUser({ email: 'batches-admin@test.local', password: 'admin-password', role: 'admin' })
    const owner = await seedUser({ email: 'someone.with-a-long-address@example-company.test', balance: '5' })
    for (const [name, endpoint] of [['openai', '/v1/chat/completions'], ['gemini', GEMINI_EMBED_BATCH_ENDPOINT]]) {
      const row = await insertObject({
        kind: 'batch',
        upstream_id: `browser-${name}`,
        user_id: owner.userId,
        api_key_id: owner.keyId,
        channel_id: null,
        model: 'gemini-embedding-001',
        served_model: 'gemini-embedding-001',
        purpose: null,
        endpoint,
        filename: null,
        bytes: 10,
        lines: 1,
        completion_hold: 1,
        input_file_id: null,
        status: 'completed',
        object: { status: 'completed', request_counts: { total: 1, completed: 1, failed: 0 } },
        request_id: randomUUID(),
      })
      await db.from('batch_objects').where('id', row.id).update({ billed_at: new Date(), billed_cost: '1234.567891' })
    }
    browser = await launchChromium()
    return () => browser.close()
  })

  for (const viewport of [LAPTOP, PHONE]) {
    test(`owner, status and cost in view at ${viewport.width} px`, async ({ assert }) => {
      const context = await browser.newContext({ locale: 'en-US', viewport })
      const page = await context.newPage()
      await login(page, 'batches-admin@test.local', 'admin-password')
      await page.goto(`${baseUrl()}/admin/batches`)
      const table = page.locator('table[data-table="batches"]')
      const overflow = await table.evaluate((element: any) => element.parentElement.scrollWidth - element.parentElement.clientWidth)
      assert.equal(overflow, 0, 'the batches table fits its box')
      const rows = table.locator('tbody tr')
      assert.equal(await rows.count(), 2)
      for (const row of await rows.all()) {
        const cost = await row.locator('[data-billed]').boundingBox()
        assert.isAtMost(cost!.x + cost!.width, viewport.width)
        assert.include(await row.innerText(), '@example-company.test')
        assert.include(await row.innerText(), 'completed')
      }
      assert.equal(await pageWidth(page), viewport.width)
      await context.close()
    }).timeout(60_000)
  }
})
