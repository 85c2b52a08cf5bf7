import { mkdirSync } from 'node:fs'
import { chromium, type Page } from 'playwright'
import { baseUrl } from '#tests/helpers'

/** Helpers of the Chromium tests (tests/browser): Debian's chromium, the login form, screenshots at two widths. */

export const PHONE = { width: 390, height: 844 }
export const LAPTOP = { width: 1366, height: 900 }

/** Debian's /usr/bin/chromium, headless, a fresh profile, no background networking. */
export function launchChromium() {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  })
}

/** Signs in through /login. */
export async function login(page: Page, email: string, password: string) {
  await page.goto(`${baseUrl()}/login`)
  await page.locator('#f-email').fill(email)
  await page.locator('#f-password').fill(password)
  await page.getByRole('button', { name: 'Log in' }).click()
  await page.waitForLoadState('load')
}

/** The page's full width: more than the viewport means it pans sideways. */
export async function pageWidth(page: Page) {
  return Number(await page.evaluate('document.documentElement.scrollWidth'))
}

/**
 * Saves the page at a laptop and a phone width in `dir` (tmp/, not committed)
 * and returns its width on the phone, so a test can assert nothing pans.
 */
export async function shoot(page: Page, dir: string, name: string) {
  mkdirSync(dir, { recursive: true })
  await page.setViewportSize(LAPTOP)
  await page.screenshot({ path: `${dir}/${name}-laptop.png`, fullPage: true })
  await page.setViewportSize(PHONE)
  await page.screenshot({ path: `${dir}/${name}-phone.png`, fullPage: true })
  const width = await pageWidth(page)
  await page.setViewportSize(LAPTOP)
  return width
}
