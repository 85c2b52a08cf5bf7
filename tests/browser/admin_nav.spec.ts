import { test } from '@japa/runner'
import type { Browser, Page } from 'playwright'
import { LAPTOP, PHONE, launchChromium, login, pageWidth } from '#tests/browser_page'
import { createUser } from '#actions/create_user'
import { baseUrl, resetDatabase } from '#tests/helpers'

/** The panel's sections as the nav groups them: group, then each page's link text and path. */
const GROUPS: Array<[string, Array<[string, string]>]> = [
  ['Overview', [['Dashboard', '/admin'], ['Usage', '/admin/usage'], ['Batches', '/admin/batches'], ['Audit log', '/admin/audit']]],
  ['Access', [['Users', '/admin/users'], ['API keys', '/admin/keys'], ['Teams', '/admin/teams'], ['Organizations', '/admin/organizations'], ['Budgets', '/admin/budgets']]],
  ['Models', [['Channels', '/admin/channels'], ['Prices', '/admin/prices']]],
  ['Billing', [['Plans', '/admin/plans'], ['Codes', '/admin/redemptions'], ['Payments', '/admin/payments']]],
  ['Settings', [['Settings', '/admin/settings']]],
]

/** The link's box lies inside the viewport (not scrolled or wrapped out of sight). */
async function onScreen(page: Page, selector: string) {
  const box = (await page.evaluate(`JSON.parse(JSON.stringify(document.querySelector(${JSON.stringify(selector)}).getBoundingClientRect()))`)) as {
    left: number
    right: number
  }
  return box.left >= 0 && box.right <= (page.viewportSize()?.width ?? 0)
}

/**
 * The admin panel's nav in Chromium: every section is reached from the
 * dashboard through the nav (its group, then its page: two clicks at most),
 * on a laptop and on a phone; the current group and page are marked
 * (aria-current) and every link is on screen, nothing pans sideways.
 */
test.group('Admin nav in a browser', (group) => {
  let browser: Browser

  group.setup(async () => {
    await resetDatabase()
    await createUser({ email: 'nav-admin@test.local', password: 'admin-password', role: 'admin' })
    browser = await launchChromium()
    return () => browser.close()
  })

  for (const viewport of [LAPTOP, PHONE]) {
    test(`every section through the nav at ${viewport.width} px`, async ({ assert }) => {
      const context = await browser.newContext({ locale: 'en-US', viewport })
      const page = await context.newPage()
      await login(page, 'nav-admin@test.local', 'admin-password')
      await page.goto(`${baseUrl()}/admin`)
      const nav = page.getByRole('navigation', { name: 'Sections' })
      const groupLinks = nav.locator('ul.subnav__groups a')
      assert.deepEqual(await groupLinks.allInnerTexts(), GROUPS.map(([label]) => label))
      if (viewport === LAPTOP) {
        // The groups are one row on a laptop
        const tops = await groupLinks.evaluateAll((links: any[]) => links.map((a) => Math.round(a.getBoundingClientRect().top)))
        assert.lengthOf(new Set(tops as number[]), 1, `the groups are on one line: ${tops}`)
      }

      for (const [groupLabel, pages] of GROUPS) {
        for (const [label, path] of pages) {
          await page.goto(`${baseUrl()}/admin`)
          await nav.locator('ul.subnav__groups').getByRole('link', { name: groupLabel, exact: true }).click()
          await page.waitForURL(`${baseUrl()}${pages[0][1]}`)
          assert.equal(await nav.locator('ul.subnav__groups a[aria-current]').innerText(), groupLabel, `${groupLabel} marked`)
          if (pages.length > 1) {
            const link = nav.locator('ul.subnav__pages').getByRole('link', { name: label, exact: true })
            assert.isTrue(await onScreen(page, `nav.subnav ul.subnav__pages a[href="${path}"]`), `${label} on screen`)
            await link.click()
            await page.waitForURL(`${baseUrl()}${path}`)
            assert.equal(await link.getAttribute('aria-current'), 'page', `${label} is the current page`)
            assert.lengthOf(await nav.locator('[aria-current="page"]').all(), 1, `one current page on ${path}`)
          } else {
            assert.equal(await nav.locator('[aria-current="page"]').innerText(), label)
          }
          for (const [index, [other]] of GROUPS.entries()) {
            assert.isTrue(await onScreen(page, `nav.subnav ul.subnav__groups li:nth-child(${index + 1}) a`), `${other} on screen`)
          }
          assert.equal(await pageWidth(page), viewport.width, `${path} is wider than the screen`)
        }
      }
      await context.close()
    }).timeout(120_000)
  }
})
