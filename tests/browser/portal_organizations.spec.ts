import { test } from '@japa/runner'
import { DateTime } from 'luxon'
import db from '@adonisjs/lucid/services/db'
import type { Browser } from 'playwright'
import { addOrganizationMembers, createOrganization } from '#actions/organizations'
import { createTeam, setKeyTeam } from '#actions/teams'
import { launchChromium, login, PHONE, pageWidth, LAPTOP } from '#tests/browser_page'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { baseUrl, gateway, post, refreshCaches, resetDatabase, seedChannel, seedPrice, seedUser, startMock } from '#tests/helpers'

/**
 * The portal's Organizations section in Chromium: an org_admin finds it in
 * the nav, sees the budget, the teams and the 30-day spend chart drawn, adds
 * a member by e-mail, is refused demoting themselves (the last org_admin)
 * beside their row, creates a team; the page does not pan on a phone. A
 * viewer sees the spend without the other members' e-mails.
 */
test.group('Portal organizations in a browser', (group) => {
  let mock: MockUpstream
  let browser: Browser

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'mock', baseUrl: mock.url, models: ['*'] })
    await seedPrice('org-model', '1000', '2000')
    browser = await launchChromium()
    return async () => {
      await browser.close()
      await mock.stop()
    }
  })

  test('an org_admin sees the organization, adds a member, keeps the last admin, creates a team; a viewer sees spend only', async ({ assert }) => {
    const admin = await seedUser({ balance: '10' })
    const viewer = await seedUser({ balance: '10' })
    const newcomer = await seedUser({ balance: '10' })
    const org = await createOrganization({ alias: 'acme-research', maxBudget: '50', budgetPeriod: 'month', models: ['org-*'], rpm: 900 })
    const team = await createTeam({ alias: 'alpha-squad', maxBudget: '20', budgetPeriod: 'month', organization: org.id })
    await addOrganizationMembers(org.id, [
      { user: admin.email, role: 'org_admin' },
      { user: viewer.email, role: 'internal_user_viewer' },
    ])
    await setKeyTeam(String(admin.keyId), team.id)
    await refreshCaches()
    for (let i = 0; i < 4; i++) {
      const response = await post('/v1/chat/completions', { model: 'org-model', messages: [{ role: 'user', content: 'hi' }] }, { authorization: `Bearer ${admin.key}` })
      assert.equal(response.status, 200)
      await response.text()
    }
    await (await gateway()).meter.drain()
    // Spread over the last days, so the chart has a shape.
    const rows = await db.from('usage_records').where('organization_id', org.id).orderBy('id').select('id')
    for (const [i, row] of rows.entries()) {
      await db.from('usage_records').where('id', row.id).update({ created_at: DateTime.utc().minus({ days: i * 3 }).startOf('day').plus({ hours: 1 }).toJSDate() })
    }

    const page = await browser.newPage({ locale: 'en-US', viewport: LAPTOP })
    await login(page, admin.email, 'password123')
    await page.locator('nav a[href="/dashboard/organizations"]').click()
    await page.waitForLoadState('load')
    await page.locator(`tr[data-org-id="${org.id}"] a`).click()
    await page.waitForLoadState('load')
    assert.equal(new URL(page.url()).pathname, `/dashboard/organizations/${org.id}`)
    assert.include(await page.locator('[data-org-budget]').innerText(), '$0.09 of $50.00')
    // The chart is drawn (uPlot's canvas), not only its fallback table.
    await page.locator('#org-spend-per-day canvas').first().waitFor()
    assert.include(await page.locator(`tr[data-team-id="${team.id}"]`).innerText(), 'alpha-squad')

    // Add a member by e-mail.
    await page.locator('#f-email').fill(newcomer.email)
    await page.locator('#f-new_role').selectOption('internal_user')
    await page.locator('form[data-form="org-member"] button[type="submit"]').click()
    await page.waitForLoadState('load')
    assert.include(await page.locator('.flash--success').innerText(), `${newcomer.email} is in the organization as Member.`)
    assert.equal(await page.locator(`tr[data-member="${newcomer.userId}"]`).count(), 1)

    // Demote themselves, the only org_admin: refused beside their row.
    const own = page.locator(`tr[data-member="${admin.userId}"]`)
    await own.locator('select[name="role"]').selectOption('internal_user')
    await own.locator('button[type="submit"]').first().click()
    await page.waitForLoadState('load')
    assert.include(await page.locator(`#member-${admin.userId}-error`).innerText(), 'The organization needs an admin')

    // A team, within the organization's budget.
    await page.locator('#f-team_name').fill('gamma-squad')
    await page.locator('#f-team_budget').fill('10')
    await page.locator('form[data-form="org-team"] button[type="submit"]').click()
    await page.waitForLoadState('load')
    assert.include(await page.locator('.flash--success').innerText(), 'Team gamma-squad created')
    assert.include(await page.locator('[data-table="org-teams"]').innerText(), 'gamma-squad')

    // A phone: nothing pans sideways.
    await page.setViewportSize(PHONE)
    assert.isAtMost(await pageWidth(page), PHONE.width)
    await page.close()

    const viewerPage = await browser.newPage({ locale: 'en-US', viewport: LAPTOP })
    await login(viewerPage, viewer.email, 'password123')
    await viewerPage.goto(`${baseUrl()}/dashboard/organizations/${org.id}`)
    const text = await viewerPage.locator('main').innerText()
    assert.include(text, 'acme-research')
    assert.include(text, viewer.email)
    assert.notInclude(text, admin.email)
    assert.notInclude(text, newcomer.email)
    assert.equal(await viewerPage.locator('form[data-form="org-member"]').count(), 0)
    await viewerPage.close()
  })
})
