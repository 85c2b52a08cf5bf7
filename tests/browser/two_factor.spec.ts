import { test } from '@japa/runner'
import type { Browser } from 'playwright'
import { LAPTOP, PHONE, launchChromium, login, shoot } from '#tests/browser_page'
import { createUser } from '#actions/create_user'
import { clearFormThrottles } from '#services/form_throttle'
import { clearLoginThrottles } from '#services/login_throttle'
import { base32Decode, hotp, timeStep } from '#services/totp'
import { baseUrl, resetDatabase } from '#tests/helpers'

/**
 * Two-factor sign-in in Chromium: a user sets it up on the Security page
 * (QR code, key, confirm, recovery codes), logs out, signs in through the
 * second step (a wrong code first), and the admin sees it on the user's
 * page. Every page at laptop and phone widths in tmp/screenshots/two_factor,
 * none panning sideways on the phone.
 */
const SHOTS = 'tmp/screenshots/two_factor'

/** The current step once at least 10 s of it are left (see tests/functional/portal/two_factor.spec.ts). */
async function steadyStep() {
  const left = 30_000 - (Date.now() % 30_000)
  if (left < 10_000) await new Promise((resolve) => setTimeout(resolve, left + 100))
  return timeStep()
}

test.group('Two-factor sign-in in a browser', (group) => {
  let browser: Browser
  let userId: number

  group.setup(async () => {
    await resetDatabase()
    await createUser({ email: 'tf-admin@test.local', password: 'admin-password', role: 'admin' })
    const { user } = await createUser({ email: 'tf-user@test.local', password: 'user-password', role: 'user' })
    userId = user.id
    await clearFormThrottles('127.0.0.1', [user.id])
    await clearLoginThrottles('127.0.0.1', [user.id])
    browser = await launchChromium()
    return async () => {
      await clearLoginThrottles('127.0.0.1', [user.id])
      await browser.close()
    }
  })

  test('set up with the QR code, save the recovery codes, then sign in with a code from the app', async ({ assert }) => {
    const context = await browser.newContext({ locale: 'en-US', viewport: LAPTOP })
    const page = await context.newPage()
    await login(page, 'tf-user@test.local', 'user-password')
    await page.getByRole('link', { name: 'Security' }).first().click()
    await page.waitForURL(`${baseUrl()}/dashboard/security`)
    assert.equal(await page.locator('[data-two-factor-state]').innerText(), 'Off')
    assert.equal(await shoot(page, SHOTS, 'security-off'), PHONE.width)

    // Set-up: the QR code is drawn large enough to scan, the key can be copied
    await page.getByRole('button', { name: 'Set up two-factor sign-in' }).click()
    await page.waitForSelector('.qr__code svg')
    const qr = await page.locator('.qr__code svg').boundingBox()
    assert.isAtLeast(qr!.width, 150)
    assert.equal(qr!.width, qr!.height)
    assert.isTrue(await page.getByRole('img', { name: 'QR code that adds this account to an authenticator app' }).isVisible())
    assert.isTrue(await page.locator('[data-copy="#totp-secret"]').isVisible(), 'the copy button shows with JavaScript')
    const secret = (await page.locator('[data-totp-secret]').innerText()).replace(/\s/g, '')
    assert.lengthOf(base32Decode(secret)!, 20)
    assert.equal(await shoot(page, SHOTS, 'security-setup'), PHONE.width)
    // Cancelling drops the secret; setting up again gives a new one
    await page.getByRole('button', { name: 'Cancel set-up' }).click()
    await page.waitForSelector('[data-two-factor-state="off"]')
    await page.getByRole('button', { name: 'Set up two-factor sign-in' }).click()
    await page.waitForSelector('.qr__code svg')
    assert.notEqual((await page.locator('[data-totp-secret]').innerText()).replace(/\s/g, ''), secret)
    const current = (await page.locator('[data-totp-secret]').innerText()).replace(/\s/g, '')
    const key = base32Decode(current)!
    await page.locator('.otpauth summary').click()
    assert.include(await page.locator('[data-otpauth-uri]').innerText(), `secret=${current}`)

    // Confirm with the app's code: recovery codes, once
    const base = await steadyStep()
    await page.locator('#f-app_code').fill(hotp(key, base - 1))
    await page.getByRole('button', { name: 'Turn on' }).click()
    await page.waitForSelector('[data-recovery-codes]')
    const codes = (await page.locator('#recovery-codes').innerText()).trim().split('\n')
    assert.lengthOf(codes, 10)
    assert.isTrue(await page.getByRole('button', { name: 'Copy all' }).isVisible())
    assert.equal(await page.getByRole('button', { name: 'Download as a text file' }).getAttribute('download'), 'recovery-codes.txt')
    assert.equal(await shoot(page, SHOTS, 'security-codes'), PHONE.width)

    await page.goto(`${baseUrl()}/dashboard/security`)
    assert.equal(await page.locator('[data-two-factor-state]').innerText(), 'On')
    assert.notInclude(await page.locator('main').innerText(), codes[0])
    await page.getByText('Turn off', { exact: true }).click()
    assert.isTrue(await page.locator('#f-disable_password').isVisible())
    assert.equal(await shoot(page, SHOTS, 'security-on'), PHONE.width)
    await page.getByRole('button', { name: 'Log out' }).click()
    await page.waitForURL(`${baseUrl()}/login`)

    // The second step: a wrong code first, then the right one
    await page.locator('#f-email').fill('tf-user@test.local')
    await page.locator('#f-password').fill('user-password')
    await page.getByRole('button', { name: 'Log in' }).click()
    await page.waitForURL(`${baseUrl()}/login/two-factor`)
    assert.include(await page.locator('main').innerText(), 'Signing in as tf-user@test.local')
    assert.equal(await page.evaluate('document.activeElement && document.activeElement.id'), 'f-code', 'the code field has the focus')
    assert.equal(await shoot(page, SHOTS, 'login-two-factor'), PHONE.width)
    const wrong = hotp(key, base + 5)
    await page.locator('#f-code').fill(wrong)
    await page.getByRole('button', { name: 'Verify' }).click()
    await page.waitForSelector('.flash--error')
    assert.include(await page.locator('.flash--error').innerText(), 'That code is not right')
    await page.getByText('Lost your phone? Use a recovery code').click()
    assert.isTrue(await page.locator('#f-recovery_code').isVisible())
    assert.equal(await shoot(page, SHOTS, 'login-two-factor-error'), PHONE.width)
    await page.locator('#f-code').fill(hotp(key, base))
    await page.getByRole('button', { name: 'Verify' }).click()
    await page.waitForURL(`${baseUrl()}/dashboard`)
    await context.close()

    // In Vietnamese and Chinese the pages fit a phone too (the login helper types the code)
    const other = await browser.newContext({ locale: 'vi-VN', viewport: LAPTOP })
    const vi = await other.newPage()
    await login(vi, 'tf-user@test.local', 'user-password', { code: () => hotp(key, base + 1) })
    assert.equal(new URL(vi.url()).pathname, '/dashboard')
    await vi.goto(`${baseUrl()}/dashboard/security`)
    assert.include(await vi.locator('h1').innerText(), 'Bảo mật')
    assert.equal(await shoot(vi, SHOTS, 'security-on-vi'), PHONE.width)
    await vi.goto(`${baseUrl()}/lang/zh`)
    await vi.goto(`${baseUrl()}/dashboard/security`)
    assert.include(await vi.locator('h1').innerText(), '安全')
    assert.equal(await shoot(vi, SHOTS, 'security-on-zh'), PHONE.width)
    await vi.locator('form[action="/logout"] button').click()
    await vi.waitForURL(`${baseUrl()}/login`)
    await vi.goto(`${baseUrl()}/lang/vi`)
    await login(vi, 'tf-user@test.local', 'user-password')
    assert.include(await vi.locator('h1').innerText(), 'Đăng nhập hai bước')
    assert.equal(await shoot(vi, SHOTS, 'login-two-factor-vi'), PHONE.width)
    await other.close()

    // The admin sees it on the user's page, with the way to turn it off
    const adminContext = await browser.newContext({ locale: 'en-US', viewport: LAPTOP })
    const admin = await adminContext.newPage()
    await login(admin, 'tf-admin@test.local', 'admin-password')
    await admin.goto(`${baseUrl()}/admin/users/${userId}`)
    assert.include(await admin.locator('[data-two-factor]').innerText(), 'On since')
    await admin.getByText('Turn off two-factor sign-in', { exact: true }).click()
    assert.equal(await shoot(admin, SHOTS, 'admin-user'), PHONE.width)
    await adminContext.close()
  }).timeout(120_000)
})
