import { test } from '@japa/runner'
import ace from '@adonisjs/core/services/ace'
import db from '@adonisjs/lucid/services/db'
import { randomUUID } from 'node:crypto'
import type { Browser, Page } from 'playwright'
import { PHONE, launchChromium, login, pageWidth } from '#tests/browser_page'
import { createUser } from '#actions/create_user'
import { createPlan } from '#actions/create_plan'
import { setDefaultPlan } from '#actions/set_default_plan'
import { createTeam, addTeamMembers } from '#actions/teams'
import { createOrganization, addOrganizationMembers } from '#actions/organizations'
import { clearFormThrottles } from '#services/form_throttle'
import { insertObject } from '#gateway/batches/batch_store'
import SeedDemo from '#commands/seed_demo'
import { baseUrl, refreshCaches, resetDatabase, seedUser } from '#tests/helpers'

/**
 * Every page of the panel and the portal on a phone (390 px): none pans sideways. page_layout.spec.ts checks the
 * lists people open most; this walks all of them, the forms and the detail pages too, with demo data and long
 * names in them, so a page added or changed later is held to the same rule.
 */
const LONG = 'someone.with-a-very-long-address.for-layout@example-company-with-a-long-name.test'

async function overflowing(page: Page, path: string): Promise<string | null> {
  const response = await page.goto(`${baseUrl()}${path}`)
  if (!response || response.status() >= 400) return `${path}: HTTP ${response?.status()}`
  const width = await pageWidth(page)
  if (width <= PHONE.width) return null
  // Name the widest element for the failure message: what to fix.
  const culprit = await page.evaluate(
    `(() => { let worst = null, right = 0; for (const el of document.querySelectorAll('body *')) { const r = el.getBoundingClientRect(); if (r.right > right && el.closest('.table-wrap, pre') === null) { right = r.right; worst = el } } return worst ? worst.tagName.toLowerCase() + '.' + [...worst.classList].join('.') + ' ' + Math.round(right) + 'px: ' + (worst.textContent || '').trim().slice(0, 60) : '' })()`
  )
  return `${path}: ${width}px (${culprit})`
}

test.group('Every page on a phone', (group) => {
  let browser: Browser
  const ids: Record<string, string | number> = {}

  group.setup(async () => {
    await resetDatabase()
    await clearFormThrottles('127.0.0.1')
    await setDefaultPlan((await createPlan({ name: 'starter' })).id)
    await createUser({ email: 'every-admin@test.local', password: 'admin-password', role: 'admin' })
    const seed = await ace.create(SeedDemo, ['--users', '4', '--usage-rows', '200'])
    ace.ui.switchMode('raw')
    await seed.exec()
    const member = await seedUser({ email: LONG, balance: '12.5' })
    await createUser({ email: 'every-user@test.local', password: 'user-password', role: 'user' })
    const team = await createTeam({ alias: 'A team with a rather long name for layout checks', maxBudget: '100', budgetPeriod: 'month' })
    await addTeamMembers(team.id, [{ user: LONG, role: 'admin' }, { user: 'every-user@test.local', role: 'admin' }])
    const org = await createOrganization({ alias: 'An organization with a long name for layout checks' })
    await addOrganizationMembers(org.id, [{ user: 'every-user@test.local', role: 'org_admin' }])
    const batch = await insertObject({
      kind: 'batch', upstream_id: 'every-page', user_id: member.userId, api_key_id: member.keyId, channel_id: null,
      model: 'gpt-4o-mini-with-a-long-model-name-2026-01-01', served_model: 'gpt-4o-mini', purpose: null, endpoint: '/v1/chat/completions',
      filename: 'a-rather-long-input-file-name-for-layout.jsonl', bytes: 10, lines: 1, completion_hold: 1, input_file_id: null,
      status: 'completed', object: { status: 'completed', request_counts: { total: 1, completed: 1, failed: 0 } }, request_id: randomUUID(),
    })
    await refreshCaches()
    ids.user = member.userId
    ids.key = member.keyId
    ids.team = team.id
    ids.org = org.id
    ids.batch = batch.id
    ids.channel = (await db.from('channels').orderBy('id').first()).id
    ids.plan = (await db.from('plans').orderBy('id').first()).id
    ids.usage = (await db.from('usage_records').orderBy('id', 'desc').first()).id
    ids.requestId = (await db.from('usage_records').orderBy('id', 'desc').first()).request_id
    browser = await launchChromium()
    return () => browser.close()
  })

  test('the panel: lists, forms and detail pages', async ({ assert }) => {
    const context = await browser.newContext({ locale: 'en-US', viewport: PHONE })
    const page = await context.newPage()
    await login(page, 'every-admin@test.local', 'admin-password')
    const paths = [
      '/admin', '/admin/users', '/admin/users/new', `/admin/users/${ids.user}`, `/admin/users/${ids.user}/end-users`, '/admin/budgets',
      '/admin/plans', '/admin/plans/new', `/admin/plans/${ids.plan}/edit`, '/admin/settings', '/admin/keys', '/admin/keys/new',
      `/admin/keys/${ids.key}`, `/admin/keys/${ids.key}/edit`, '/admin/teams', '/admin/teams/new', `/admin/teams/${ids.team}`,
      `/admin/teams/${ids.team}/edit`, `/admin/teams/${ids.team}/members/${ids.user}/edit`, '/admin/organizations', '/admin/organizations/new',
      `/admin/organizations/${ids.org}/edit`, '/admin/channels', '/admin/channels/new', `/admin/channels/${ids.channel}`, '/admin/prices',
      '/admin/redemptions', '/admin/redemptions/new', '/admin/payments', '/admin/usage', `/admin/usage/${ids.usage}`, '/admin/batches',
      `/admin/batches/${ids.batch}`, '/admin/audit',
    ]
    const wide = []
    for (const path of paths) {
      const problem = await overflowing(page, path)
      if (problem) wide.push(problem)
    }
    assert.deepEqual(wide, [])
    await context.close()
  }).timeout(120_000)

  test('the portal: every page a user and a team admin open', async ({ assert }) => {
    const context = await browser.newContext({ locale: 'en-US', viewport: PHONE })
    const page = await context.newPage()
    await login(page, 'every-user@test.local', 'user-password')
    await page.goto(`${baseUrl()}/dashboard/keys`)
    await page.locator('#f-name').fill('a-key-with-a-long-name-for-the-layout-check')
    await page.getByRole('button', { name: 'Create key' }).click()
    await page.waitForSelector('tr[data-key-id]')
    const keyId = await page.locator('tr[data-key-id]').first().getAttribute('data-key-id')
    const paths = [
      '/dashboard', '/dashboard/keys', `/dashboard/keys/${keyId}/edit`, '/dashboard/teams', `/dashboard/teams/${ids.team}`,
      '/dashboard/organizations', `/dashboard/organizations/${ids.org}`, '/dashboard/billing', '/dashboard/usage', '/dashboard/batches',
      '/dashboard/models', '/dashboard/playground', '/dashboard/security', '/dashboard/password', '/docs', '/status', '/pricing',
    ]
    const wide = []
    for (const path of paths) {
      const problem = await overflowing(page, path)
      if (problem) wide.push(problem)
    }
    assert.deepEqual(wide, [])
    await context.close()
  }).timeout(120_000)
})
