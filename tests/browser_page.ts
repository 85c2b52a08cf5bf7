import { mkdirSync } from 'node:fs'
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright'
import { baseUrl } from '#tests/helpers'

/** Helpers of the Chromium tests (tests/browser): Debian's chromium, the login form, screenshots at two widths. */

export const PHONE = { width: 390, height: 844 }
export const LAPTOP = { width: 1366, height: 900 }

/**
 * Debian's /usr/bin/chromium, headless, a fresh profile, no background
 * networking. Every context it opens records the Content-Security-Policy
 * violations Chromium reports in the console, and closing the browser fails
 * when any were left unclaimed (takeCspViolations): a page broken by the CSP
 * (a script or style it blocks) fails the test that visited it.
 */
export async function launchChromium() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  })
  const violations: string[] = []
  cspViolations.set(browser, violations)
  openLists.add(violations)
  const watch = (context: BrowserContext) => {
    context.on('console', (message) => {
      if (/Content Security Policy/i.test(message.text())) violations.push(`${message.page()?.url() ?? '?'}: ${message.text()}`)
    })
    return context
  }
  const newContext = browser.newContext.bind(browser)
  // Playwright's browser.newPage() opens its context through this.newContext too.
  browser.newContext = async (...args) => watch(await newContext(...args))
  const close = browser.close.bind(browser)
  browser.close = async (...args) => {
    await close(...args)
    openLists.delete(violations)
    if (violations.length) throw new Error(`Content-Security-Policy violations:\n${violations.join('\n')}`)
  }
  return browser
}

const cspViolations = new WeakMap<Browser, string[]>()
/** Every list of a browser still open (tests/bootstrap.ts checks them after each browser test) */
const openLists = new Set<string[]>()

/** The CSP violations reported in any open browser since the last call, cleared. */
export function takeAllCspViolations(): string[] {
  const all: string[] = []
  for (const list of openLists) all.push(...list.splice(0, list.length))
  return all
}

/** The CSP violations reported so far in this browser's pages, cleared (a test that provokes some claims them). */
export function takeCspViolations(browser: Browser) {
  const list = cspViolations.get(browser) ?? []
  return list.splice(0, list.length)
}

/**
 * Signs in through /login (in any page language). For an account with
 * two-factor sign-in on, `code` gives the code from the app for the second
 * step (/login/two-factor); without it the page stays there.
 */
export async function login(page: Page, email: string, password: string, options: { code?: () => string } = {}) {
  await page.goto(`${baseUrl()}/login`)
  await page.locator('#f-email').fill(email)
  await page.locator('#f-password').fill(password)
  await page.locator('form[action="/login"] button[type="submit"]').click()
  await page.waitForLoadState('load')
  if (options.code && new URL(page.url()).pathname === '/login/two-factor') {
    await page.locator('#f-code').fill(options.code())
    await page.locator('form:has(#f-code) button[type="submit"]').click()
    await page.waitForLoadState('load')
  }
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
