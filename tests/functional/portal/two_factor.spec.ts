import { test } from '@japa/runner'
import ace from '@adonisjs/core/services/ace'
import db from '@adonisjs/lucid/services/db'
import { createUser } from '#actions/create_user'
import { cliActor } from '#actions/audit'
import { startTwoFactor } from '#actions/start_two_factor'
import { enableTwoFactor } from '#actions/enable_two_factor'
import UserTwoFactorReset from '#commands/user_2fa_reset'
import { base32Decode, hotp, timeStep } from '#services/totp'
import { clearLoginThrottles } from '#services/login_throttle'
import { clearFormThrottles } from '#services/form_throttle'
import { baseUrl, resetDatabase, seedUser } from '#tests/helpers'
import { PageClient, htmlText } from '#tests/page_client'

/**
 * Two-factor sign-in (TOTP): enrolment on the portal's Security page, the
 * two-step login, replay protection, recovery codes, turning it off, and an
 * administrator's reset from the panel and from ace. Codes are computed here
 * from the secret with the gateway's own RFC 6238 function.
 */

/** The code of a time step (the secret as the page shows it: groups of four). */
function codeAt(secret: string, step: number) {
  return hotp(base32Decode(secret)!, step)
}

/** A 6-digit code that is none of the steps around `step`. */
function wrongCode(secret: string, step: number) {
  const taken = new Set([-1, 0, 1].map((d) => codeAt(secret, step + d)))
  let n = Number(codeAt(secret, step))
  let code: string
  do {
    n = (n + 7919) % 1_000_000
    code = String(n).padStart(6, '0')
  } while (taken.has(code))
  return code
}

/**
 * The current time step, once at least 10 s of it are left: a test then uses
 * the codes of the step before, this one and the next (each accepted once, in
 * that order) without a step boundary making one of them too old.
 */
async function steadyStep() {
  const left = 30_000 - (Date.now() % 30_000)
  if (left < 10_000) await new Promise((resolve) => setTimeout(resolve, left + 100))
  return timeStep()
}

const secretOn = (html: string) => /data-totp-secret>([^<]+)</.exec(html)![1].replace(/\s/g, '')
const recoveryCodesOn = (html: string) => htmlText(/<pre id="recovery-codes"[^>]*>([^<]+)<\/pre>/.exec(html)![1]).trim().split('\n')
const stateOn = (html: string) => /data-two-factor-state="(\w+)"/.exec(html)?.[1]

/** A user (or admin) with two-factor sign-in on, set up through the actions; the step before `base` is used. */
async function enrolled(options: { role?: 'admin' | 'user' } = {}) {
  let userId: number
  let email: string
  if (options.role === 'admin') {
    email = `admin-${Date.now()}@test.local`
    userId = (await createUser({ email, password: 'password123', role: 'admin' })).user.id
  } else {
    const seeded = await seedUser()
    userId = seeded.userId
    email = seeded.email
  }
  const secret = await startTwoFactor(userId)
  const base = await steadyStep()
  const codes = await enableTwoFactor(userId, codeAt(secret, base - 1), cliActor())
  await clearLoginThrottles('127.0.0.1', [userId])
  await clearFormThrottles('127.0.0.1', [userId])
  return { userId, email, secret, base, codes }
}

/** Signs in through both steps with a code from the app. */
async function signIn(email: string, code: string) {
  const client = new PageClient()
  const first = await client.login(email)
  if (first.location !== '/login/two-factor') throw new Error(`expected the second step, got ${first.location}`)
  await client.get('/login/two-factor')
  const second = await client.post('/login/two-factor', { code })
  return { client, second }
}

/** The audit log outlives resetDatabase (and user ids restart): only rows written since the test began. */
let auditFloor = 0
async function markAuditLog() {
  auditFloor = Number((await db.from('audit_log').max('id as id').first())?.id ?? 0)
}

async function audits(userId: number, action: string) {
  return db
    .from('audit_log')
    .where('id', '>', auditFloor)
    .where('subject_type', 'user')
    .where('subject_id', userId)
    .where('action', action)
}

test.group('Two-factor sign-in: enrolment and the two-step login', (group) => {
  group.each.setup(async () => {
    await resetDatabase()
    await markAuditLog()
    await clearLoginThrottles('127.0.0.1')
    return () => clearLoginThrottles('127.0.0.1')
  })

  test('enrol, confirm, log out; then the password alone no longer signs in: a wrong code is refused, the right one signs in once, a recovery code once; turn it off', async ({ assert }) => {
    const seeded = await seedUser()
    await clearFormThrottles('127.0.0.1', [seeded.userId])
    const client = new PageClient()
    await client.login(seeded.email)

    // The Security page (old /dashboard/password too) offers it; the nav says Security.
    let page = await client.get('/dashboard/security')
    assert.equal(page.status, 200)
    assert.equal(stateOn(page.body), 'off')
    assert.include(page.body, 'aria-current="page">Security</a>')
    assert.equal(stateOn((await client.get('/dashboard/password')).body), 'off')

    // Start: a secret, its otpauth URI and a QR code; stored encrypted, not in force yet.
    assert.equal((await client.post('/dashboard/security/two-factor/start', {})).location, '/dashboard/security#two-factor')
    page = await client.get('/dashboard/security')
    assert.equal(stateOn(page.body), 'pending')
    const secret = secretOn(page.body)
    assert.match(secret, /^[A-Z2-7]{32}$/)
    assert.lengthOf(base32Decode(secret)!, 20)
    const uri = htmlText(/data-otpauth-uri>([^<]+)</.exec(page.body)![1])
    assert.equal(
      uri,
      `otpauth://totp/AI%20Gateway:${encodeURIComponent(seeded.email)}?secret=${secret}&issuer=AI%20Gateway&algorithm=SHA1&digits=6&period=30`
    )
    assert.match(page.body, /<div class="qr__code" role="img" aria-label="[^"]+"><svg [^>]*viewBox="0 0 (\d+) \1"/)
    let row = await db.from('users').where('id', seeded.userId).first()
    assert.isNull(row.totp_enabled_at)
    assert.notInclude(row.totp_secret_encrypted, secret)
    assert.equal((await new PageClient().login(seeded.email)).location, '/dashboard', 'not in force before it is confirmed')

    // A wrong code does not turn it on; the right one does, and shows 10 recovery codes once.
    const base = await steadyStep()
    await client.get('/dashboard/security')
    assert.equal((await client.post('/dashboard/security/two-factor/confirm', { app_code: wrongCode(secret, base) })).status, 302)
    page = await client.get('/dashboard/security')
    assert.include(htmlText(page.body), 'That code is not right. Enter the 6\u2011digit code your app shows now.')
    assert.equal(stateOn(page.body), 'pending')
    const confirmed = await client.post('/dashboard/security/two-factor/confirm', { app_code: codeAt(secret, base - 1) })
    assert.equal(confirmed.status, 200)
    assert.equal(stateOn(confirmed.body), 'on')
    const codes = recoveryCodesOn(confirmed.body)
    assert.lengthOf(codes, 10)
    assert.equal(new Set(codes).size, 10)
    for (const code of codes) assert.match(code, /^[0-9A-HJKMNP-TV-Z]{5}-[0-9A-HJKMNP-TV-Z]{5}$/)
    row = await db.from('users').where('id', seeded.userId).first()
    assert.isNotNull(row.totp_enabled_at)
    assert.lengthOf(row.totp_recovery_codes, 10)
    assert.notInclude(JSON.stringify(row.totp_recovery_codes), codes[0].replace('-', ''), 'only hashes are stored')
    assert.lengthOf(await audits(seeded.userId, 'user.2fa_enable'), 1)
    page = await client.get('/dashboard/security')
    assert.notInclude(page.body, codes[0], 'the codes are shown once')
    assert.include(htmlText(page.body), 'Recovery codes left: 10 of 10.')
    assert.notInclude(page.body, 'data-totp-secret', 'the secret is not shown again')
    await client.post('/logout', {})

    // The password alone now opens only the second step.
    const second = new PageClient()
    assert.equal((await second.login(seeded.email)).location, '/login/two-factor')
    assert.equal((await second.get('/dashboard')).location, '/login', 'not signed in yet')
    const form = await second.get('/login/two-factor')
    assert.equal(form.status, 200)
    assert.include(htmlText(form.body), `Signing in as ${seeded.email}`)
    assert.include(form.body, 'autocomplete="one-time-code"')

    // A wrong code is refused.
    assert.equal((await second.post('/login/two-factor', { code: wrongCode(secret, base) })).location, '/login/two-factor')
    assert.include(htmlText((await second.get('/login/two-factor')).body), 'That code is not right')
    assert.equal((await second.get('/dashboard')).location, '/login')

    // The right code signs in (a space in it is fine).
    const code = codeAt(secret, base)
    const signedIn = await second.post('/login/two-factor', { code: `${code.slice(0, 3)} ${code.slice(3)}` })
    assert.equal(signedIn.location, '/dashboard')
    assert.equal((await second.get('/dashboard')).status, 200)

    // The same code cannot sign in again (another session, same step).
    const third = new PageClient()
    await third.login(seeded.email)
    await third.get('/login/two-factor')
    assert.equal((await third.post('/login/two-factor', { code })).location, '/login/two-factor')
    assert.include(htmlText((await third.get('/login/two-factor')).body), 'This code was already used.')
    assert.equal((await third.get('/dashboard')).location, '/login')

    // A recovery code signs in once (typed loosely), and says how many are left.
    const recovered = await third.post('/login/two-factor', { recovery_code: ` ${codes[3].toLowerCase().replace('-', ' ')} ` })
    assert.equal(recovered.location, '/dashboard')
    assert.include(htmlText((await third.get('/dashboard')).body), 'You signed in with a recovery code; 9 are left.')
    const used = await audits(seeded.userId, 'user.2fa_recovery_use')
    assert.lengthOf(used, 1)
    assert.equal(used[0].source, 'portal')
    const fourth = new PageClient()
    await fourth.login(seeded.email)
    await fourth.get('/login/two-factor')
    assert.equal((await fourth.post('/login/two-factor', { recovery_code: codes[3] })).location, '/login/two-factor')
    assert.equal((await fourth.get('/dashboard')).location, '/login', 'a recovery code works once')

    // Turning it off takes the password and a current code.
    await third.get('/dashboard/security')
    await third.post('/dashboard/security/two-factor/disable', { disable_password: 'wrong-password', disable_code: codeAt(secret, base + 1) })
    page = await third.get('/dashboard/security')
    assert.include(htmlText(page.body), 'The current password is not correct.')
    assert.match(page.body, /<details class="confirm" open>\s*<summary[^>]*>Turn off</, 'the form opens again with its error')
    assert.notInclude(page.body, 'wrong-password')
    assert.equal(stateOn(page.body), 'on')
    await third.post('/dashboard/security/two-factor/disable', { disable_password: 'password123', disable_code: wrongCode(secret, base) })
    assert.include(htmlText((await third.get('/dashboard/security')).body), 'That code is not right.')
    const off = await third.post('/dashboard/security/two-factor/disable', { disable_password: 'password123', disable_code: codeAt(secret, base + 1) })
    assert.equal(off.location, '/dashboard/security#two-factor')
    page = await third.get('/dashboard/security')
    assert.equal(stateOn(page.body), 'off')
    assert.include(htmlText(page.body), 'Two-factor sign-in is off.')
    row = await db.from('users').where('id', seeded.userId).first()
    assert.isNull(row.totp_secret_encrypted)
    assert.deepEqual(row.totp_recovery_codes, [])
    assert.lengthOf(await audits(seeded.userId, 'user.2fa_disable'), 1)
    assert.equal((await new PageClient().login(seeded.email)).location, '/dashboard', 'the password alone signs in again')
  })

  test('wrong codes are throttled per account: after 5, even the right code waits, and typing the password again does not reset it', async ({ assert }) => {
    const user = await enrolled()
    const client = new PageClient()
    await client.login(user.email)
    await client.get('/login/two-factor')
    for (let i = 0; i < 5; i++) {
      assert.equal((await client.post('/login/two-factor', { code: wrongCode(user.secret, user.base) })).location, '/login/two-factor')
    }
    const again = new PageClient()
    assert.equal((await again.login(user.email)).location, '/login/two-factor')
    await again.get('/login/two-factor')
    const held = await again.post('/login/two-factor', { code: codeAt(user.secret, user.base) })
    assert.equal(held.location, '/login/two-factor')
    assert.match(htmlText((await again.get('/login/two-factor')).body), /Too many login attempts\. Try again in \d+ minutes?/)
    assert.equal((await again.get('/dashboard')).location, '/login')
    const row = await db.from('users').where('id', user.userId).first()
    assert.equal(Number(row.totp_last_step), user.base - 1, 'a held attempt uses nothing up')
    // Once the wait is over, the same code works.
    await clearLoginThrottles('127.0.0.1', [user.userId])
    assert.equal((await again.post('/login/two-factor', { code: codeAt(user.secret, user.base) })).location, '/dashboard')
  })

  test('two sign-ins racing with the same code: exactly one gets in', async ({ assert }) => {
    const user = await enrolled()
    const clients = [new PageClient(), new PageClient(), new PageClient()]
    for (const c of clients) {
      await c.login(user.email)
      await c.get('/login/two-factor')
    }
    const code = codeAt(user.secret, user.base)
    const results = await Promise.all(clients.map((c) => c.post('/login/two-factor', { code })))
    assert.deepEqual(results.map((r) => r.location).sort(), ['/dashboard', '/login/two-factor', '/login/two-factor'])
  })

  test('the second step needs a pending sign-in; a disabled account cannot finish it', async ({ assert }) => {
    const anonymous = new PageClient()
    assert.equal((await anonymous.get('/login/two-factor')).location, '/login')
    await anonymous.get('/login')
    assert.equal((await anonymous.post('/login/two-factor', { code: '123456' })).location, '/login')
    assert.include(htmlText((await anonymous.get('/login')).body), 'Your sign-in timed out. Log in again.')

    const user = await enrolled()
    const client = new PageClient()
    await client.login(user.email)
    await client.get('/login/two-factor')
    await db.from('users').where('id', user.userId).update({ disabled_at: new Date() })
    assert.equal((await client.post('/login/two-factor', { code: codeAt(user.secret, user.base) })).location, '/login')
    assert.equal((await client.get('/dashboard')).location, '/login')
  })

  test('new recovery codes need a current code from the app; the old ones stop working', async ({ assert }) => {
    const user = await enrolled()
    const { client, second } = await signIn(user.email, codeAt(user.secret, user.base))
    assert.equal(second.location, '/dashboard')
    await client.get('/dashboard/security')
    await client.post('/dashboard/security/two-factor/recovery-codes', { _form: 'recovery', app_code: user.codes[0] })
    let page = await client.get('/dashboard/security')
    assert.include(htmlText(page.body), 'That code is not right. Enter the 6\u2011digit code your app shows now.')
    assert.match(page.body, /<details class="confirm" open>\s*<summary[^>]*>New recovery codes</)
    const made = await client.post('/dashboard/security/two-factor/recovery-codes', { _form: 'recovery', app_code: codeAt(user.secret, user.base + 1) })
    assert.equal(made.status, 200)
    const fresh = recoveryCodesOn(made.body)
    assert.lengthOf(fresh, 10)
    assert.include(htmlText(made.body), 'New recovery codes made. The old ones no longer work.')
    assert.lengthOf(await audits(user.userId, 'user.2fa_recovery_codes'), 1)

    const old = new PageClient()
    await old.login(user.email)
    await old.get('/login/two-factor')
    assert.equal((await old.post('/login/two-factor', { recovery_code: user.codes[1] })).location, '/login/two-factor')
    assert.equal((await old.post('/login/two-factor', { recovery_code: fresh[1] })).location, '/dashboard')
  })

  test('an account with it on cannot start again (the secret stays); cancelling a set-up drops its secret', async ({ assert }) => {
    const user = await enrolled()
    const { client } = await signIn(user.email, codeAt(user.secret, user.base))
    const before = (await db.from('users').where('id', user.userId).first()).totp_secret_encrypted
    await client.get('/dashboard/security')
    await client.post('/dashboard/security/two-factor/start', {})
    assert.include(htmlText((await client.get('/dashboard/security')).body), 'Two-factor sign-in is already on.')
    assert.equal((await db.from('users').where('id', user.userId).first()).totp_secret_encrypted, before)

    const other = await seedUser()
    const started = new PageClient()
    await started.login(other.email)
    await started.get('/dashboard/security')
    await started.post('/dashboard/security/two-factor/start', {})
    assert.isNotNull((await db.from('users').where('id', other.userId).first()).totp_secret_encrypted)
    await started.get('/dashboard/security')
    await started.post('/dashboard/security/two-factor/cancel', {})
    assert.isNull((await db.from('users').where('id', other.userId).first()).totp_secret_encrypted)
    assert.equal(stateOn((await started.get('/dashboard/security')).body), 'off')
  })

  test('API keys are unaffected: /v1 takes the key of an account with two-factor on', async ({ assert }) => {
    const seeded = await seedUser()
    const secret = await startTwoFactor(seeded.userId)
    await enableTwoFactor(seeded.userId, codeAt(secret, await steadyStep()), cliActor())
    const answer = await fetch(`${baseUrl()}/v1/balance`, { headers: { authorization: `Bearer ${seeded.key}` } })
    assert.equal(answer.status, 200)
  })
})

test.group('Two-factor sign-in: administrators', (group) => {
  group.each.setup(async () => {
    await resetDatabase()
    await markAuditLog()
    await clearLoginThrottles('127.0.0.1')
    return () => clearLoginThrottles('127.0.0.1')
  })

  test('an admin enrols on the same Security page and then lands in /admin after the code', async ({ assert }) => {
    await createUser({ email: 'sec-admin@test.local', password: 'password123', role: 'admin' })
    const client = new PageClient()
    assert.equal((await client.login('sec-admin@test.local')).location, '/admin')
    assert.include((await client.get('/admin')).body, 'href="/dashboard/security"', 'the panel links to it')
    await client.get('/dashboard/security')
    await client.post('/dashboard/security/two-factor/start', {})
    const secret = secretOn((await client.get('/dashboard/security')).body)
    const base = await steadyStep()
    assert.equal((await client.post('/dashboard/security/two-factor/confirm', { app_code: codeAt(secret, base - 1) })).status, 200)
    const admin = new PageClient()
    assert.equal((await admin.login('sec-admin@test.local')).location, '/login/two-factor')
    await admin.get('/login/two-factor')
    assert.equal((await admin.post('/login/two-factor', { code: codeAt(secret, base) })).location, '/admin')
  })

  test("the user's panel page shows it and an admin turns it off for a user who lost their device (audited)", async ({ assert }) => {
    const user = await enrolled()
    await createUser({ email: 'reset-admin@test.local', password: 'password123', role: 'admin' })
    const admin = new PageClient()
    await admin.login('reset-admin@test.local')
    let page = await admin.get(`/admin/users/${user.userId}`)
    assert.include(page.body, 'data-two-factor="on"')
    assert.include(htmlText(page.body), '10 of 10 recovery codes left')

    // Not for a user's session
    const { client: userClient } = await signIn(user.email, codeAt(user.secret, user.base))
    await userClient.get('/dashboard')
    assert.equal((await userClient.post(`/admin/users/${user.userId}/two-factor/reset`, {})).status, 403)

    const reset = await admin.post(`/admin/users/${user.userId}/two-factor/reset`, {})
    assert.equal(reset.location, `/admin/users/${user.userId}#two-factor`)
    page = await admin.get(`/admin/users/${user.userId}`)
    assert.include(page.body, 'data-two-factor="off"')
    assert.include(htmlText(page.body), `Two-factor sign-in of ${user.email} is off`)
    const [entry] = await audits(user.userId, 'user.2fa_reset')
    assert.equal(entry.actor, 'reset-admin@test.local')
    assert.equal(entry.source, 'panel')
    assert.equal((await new PageClient().login(user.email)).location, '/dashboard')

    // Again: nothing to reset, said on the page
    await admin.get(`/admin/users/${user.userId}`)
    await admin.post(`/admin/users/${user.userId}/two-factor/reset`, {})
    assert.include(htmlText((await admin.get(`/admin/users/${user.userId}`)).body), 'has no two-factor sign-in to reset')
  })

  test('ace user:2fa-reset --email turns it off (audited as cli); an account without it is refused', async ({ assert }) => {
    const user = await enrolled()
    const command = await ace.create(UserTwoFactorReset, ['--email', user.email])
    ace.ui.switchMode('raw')
    await command.exec()
    command.assertSucceeded()
    const row = await db.from('users').where('id', user.userId).first()
    assert.isNull(row.totp_enabled_at)
    assert.isNull(row.totp_secret_encrypted)
    const [entry] = await audits(user.userId, 'user.2fa_reset')
    assert.equal(entry.source, 'cli')
    assert.equal((await new PageClient().login(user.email)).location, '/dashboard')

    const again = await ace.create(UserTwoFactorReset, ['--email', user.email])
    await again.exec()
    again.assertFailed()
    again.assertLog(`[ red(error) ] ${user.email} has no two-factor sign-in to reset`, 'stderr')
    const unknown = await ace.create(UserTwoFactorReset, ['--email', 'nobody@test.local'])
    await unknown.exec()
    unknown.assertFailed()
    unknown.assertLog('[ red(error) ] No user "nobody@test.local"', 'stderr')
  })
})
