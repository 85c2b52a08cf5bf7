import { test } from '@japa/runner'
import type { Browser } from 'playwright'
import { createUser } from '#actions/create_user'
import { addTeamMembers, createTeam } from '#actions/teams'
import { LAPTOP, PHONE, launchChromium, login, pageWidth } from '#tests/browser_page'
import { baseUrl, resetDatabase, seedUser } from '#tests/helpers'

/**
 * A team's page in the panel lists its members with their budgets and
 * limits: a table on a laptop, one block per member on a phone, each value
 * under its label, so nothing is pushed off to the side of its box (the
 * table used to scroll sideways inside it, the budget and the Edit button
 * out of sight).
 */
test.group('Admin team members in a browser', (group) => {
  let browser: Browser
  let teamId: number

  group.setup(async () => {
    await resetDatabase()
    await createUser({ email: 'team-admin@test.local', password: 'admin-password', role: 'admin' })
    const alice = await seedUser({ email: 'alice.long-address@example-company.test' })
    const bob = await seedUser({ email: 'bob@test.local' })
    const team = await createTeam({ alias: 'alpha-squad', maxBudget: '20', budgetPeriod: 'month' })
    teamId = team.id
    await addTeamMembers(team.id, [{ user: alice.email, role: 'admin' }], undefined, { maxBudget: '5', budgetPeriod: 'month', rpm: 60, tpm: 100000 })
    await addTeamMembers(team.id, [{ user: bob.email }])
    browser = await launchChromium()
    return () => browser.close()
  })

  for (const viewport of [LAPTOP, PHONE]) {
    test(`members, budgets and their buttons in view at ${viewport.width} px`, async ({ assert }) => {
      const context = await browser.newContext({ locale: 'en-US', viewport })
      const page = await context.newPage()
      await login(page, 'team-admin@test.local', 'admin-password')
      await page.goto(`${baseUrl()}/admin/teams/${teamId}`)
      const table = page.getByTestId('team-members')
      const row = table.locator('tbody tr').filter({ hasText: 'alice.long-address' })
      assert.include(await row.innerText(), '$5.00 a month')
      assert.include(await row.innerText(), '60 RPM, 100,000 TPM')
      // Nothing of the table is scrolled out of its box, and the row's Edit button is inside the screen.
      const overflow = await table.evaluate((element: any) => element.parentElement.scrollWidth - element.parentElement.clientWidth)
      assert.equal(overflow, 0, 'the members table fits its box')
      const edit = await row.getByRole('button', { name: 'Edit' }).boundingBox()
      assert.isAtMost(edit!.x + edit!.width, viewport.width)
      if (viewport === PHONE) {
        // One block per member: the budget under its label, below the e-mail.
        assert.include(await row.locator('td[data-label="Member budget"]').evaluate((cell: any) => (globalThis as any).getComputedStyle(cell, '::before').content), 'Member budget')
      }
      assert.equal(await pageWidth(page), viewport.width)
      await context.close()
    }).timeout(60_000)
  }
})
