import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import encryption from '@adonisjs/core/services/encryption'
import { createUser } from '#actions/create_user'
import { cliActor } from '#actions/audit'
import { setReferralTerms } from '#actions/referrals'
import { putSetting, setRegistrationOpen } from '#services/app_settings'
import { clearLoginThrottles } from '#services/login_throttle'
import { clearFormThrottles } from '#services/form_throttle'
import { clearMailThrottles } from '#services/mail/mail_throttle'
import { outboxIdle } from '#services/mail/mail_outbox'
import { createApiKey } from '#actions/issue_api_key'
import { updateUser } from '#actions/update_user'
import { adminApi, balanceAndLedger, baseUrl, resetDatabase, seedUser } from '#tests/helpers'
import { PanelClient, textOf } from '#tests/panel_client'
import { MockSmtp, linkIn } from '#tests/fixtures/mock_smtp'

/**
 * E-mail (app/services/mail/): the forgotten-password link and sign-up
 * verification, against a mock SMTP server (tests/fixtures/mock_smtp.ts)
 * set as the panel's server.
 */
let smtp: MockSmtp

async function useMockSmtp(options: { verifySignups?: boolean } = {}) {
  await putSetting('smtp', { host: '127.0.0.1', port: smtp.port, secure: false, user: null, passwordEncrypted: null, from: 'noreply@gateway.test' })
  await putSetting('mail_options', { productName: 'Acme AI', verifySignups: options.verifySignups ?? false, siteUrl: SITE })
}

/** The site address the links start with: not the address the tests reach the gateway at, so a link built from the request shows */
const SITE = 'https://ai.example.test'

async function noMail() {
  await db.from('app_settings').whereIn('key', ['smtp', 'mail_options']).delete()
}

async function signedIn(email: string, password = 'password123') {
  const client = new PanelClient()
  const result = await client.login(email, password)
  if (result.status !== 302) throw new Error(`login of ${email} failed: ${result.status}`)
  return client
}

/** Asks for a reset link through the form; returns the page the redirect shows. */
async function askReset(email: string) {
  const client = new PanelClient()
  await client.get('/forgot-password')
  const asked = await client.post('/forgot-password', { email })
  return { asked, page: asked.location ? await client.follow(asked) : null }
}

const pathOf = (link: string) => new URL(link, baseUrl()).pathname

test.group('E-mail: forgotten password', (group) => {
  group.setup(async () => {
    await resetDatabase()
    smtp = await new MockSmtp().start()
    return async () => {
      await noMail()
      await smtp.stop()
    }
  })
  group.each.setup(async () => {
    await useMockSmtp()
    smtp.messages = []
    smtp.refuse = false
    await clearLoginThrottles('127.0.0.1')
    await clearMailThrottles('127.0.0.1')
  })

  test('a link by e-mail sets a new password once, signs every session out and is audited', async ({ assert }) => {
    const user = await seedUser()
    await clearMailThrottles('127.0.0.1', [user.email])
    const elsewhere = await signedIn(user.email)
    const login = await new PanelClient().get('/login')
    assert.include(login.html, 'href="/forgot-password"', '/login offers it')

    const { asked, page } = await askReset(user.email.toUpperCase())
    assert.equal(asked.status, 302)
    assert.equal(asked.location, '/forgot-password')
    assert.include(textOf(page!.html), 'If an account exists for this address, a link to set a new password was sent to it.')

    const [mail] = await smtp.waitFor(user.email)
    assert.equal(mail.from, 'noreply@gateway.test')
    assert.include(mail.raw, 'Acme AI', 'the product name from the settings')
    assert.match(mail.raw, /multipart\/alternative/i, 'plain text and HTML')
    const link = linkIn(mail, '/reset-password/')
    assert.isTrue(link.startsWith(`${SITE}/reset-password/`), 'the link is on the saved site address (no APP_URL), not the request\'s')
    const stored = await db.from('email_tokens').where('user_id', user.userId).first()
    assert.notInclude(link, stored.token_hash, 'only the hash is stored')
    assert.lengthOf(stored.token_hash, 64)

    const visitor = new PanelClient()
    const form = await visitor.get(pathOf(link))
    assert.equal(form.status, 200)
    assert.include(form.html, 'data-reset-form')
    const short = await visitor.post(pathOf(link), { password: 'short', password_confirmation: 'short' })
    assert.equal(short.status, 302, 'the Security page rules: too short is a form error')
    const shortPage = await visitor.follow(short)
    assert.include(shortPage.html, 'data-reset-form', 'back on the form, the link not used up')
    const done = await visitor.post(pathOf(link), { password: 'brand-new-pass', password_confirmation: 'brand-new-pass' })
    assert.equal(done.location, '/login')
    assert.include(textOf((await visitor.follow(done)).html), 'Your password was set')

    assert.equal((await elsewhere.get('/dashboard')).location, '/login', 'the session signed in before is over')
    assert.equal(pathOf((await new PanelClient().login(user.email, 'password123')).location!), '/login', 'the old password no longer works')
    assert.equal((await signedIn(user.email, 'brand-new-pass').then((c) => c.get('/dashboard'))).status, 200)

    const again = await new PanelClient().post(pathOf(link), { password: 'another-pass-1', password_confirmation: 'another-pass-1' }, { csrf: true })
    assert.notEqual(again.location, '/login', 'a link works once')
    assert.equal((await new PanelClient().get(pathOf(link))).status, 404)
    const audit = await db.from('audit_log').where('action', 'user.password_reset').where('subject_id', user.userId)
    assert.lengthOf(audit, 1)
  })

  test('the next sign-in still asks for the two-factor code', async ({ assert }) => {
    const user = await seedUser()
    await db.from('users').where('id', user.userId).update({ totp_secret_encrypted: encryption.encrypt('JBSWY3DPEHPK3PXP'), totp_enabled_at: new Date() })
    await askReset(user.email)
    const link = linkIn((await smtp.waitFor(user.email))[0], '/reset-password/')
    const visitor = new PanelClient()
    await visitor.get(pathOf(link))
    const done = await visitor.post(pathOf(link), { password: 'brand-new-pass', password_confirmation: 'brand-new-pass' })
    assert.equal(done.location, '/login', 'the reset signs nobody in')
    assert.equal((await visitor.get('/dashboard')).location, '/login')
    const login = await new PanelClient().login(user.email, 'brand-new-pass')
    assert.equal(login.location, '/login/two-factor')
  })

  test('the link\'s page is never cached and sends no Referer to another site', async ({ assert }) => {
    const user = await seedUser()
    await askReset(user.email)
    const link = linkIn((await smtp.waitFor(user.email))[0], '/reset-password/')
    const visitor = new PanelClient()
    const form = await visitor.get(pathOf(link))
    assert.equal(form.status, 200)
    assert.equal(form.headers.get('cache-control'), 'no-store', 'the URL is a live credential')
    assert.equal(form.headers.get('referrer-policy'), 'same-origin')
    assert.notMatch(form.html, /(src|href)="https?:/, 'nothing on the page loads from, or links to, another site')
    const gone = await new PanelClient().get('/reset-password/' + 'x'.repeat(43))
    assert.equal(gone.status, 404)
    assert.equal(gone.headers.get('cache-control'), 'no-store')
  })

  test('an expired link, a replaced one and one from before a password change are refused', async ({ assert }) => {
    const user = await seedUser()
    await clearMailThrottles('127.0.0.1', [user.email])
    await askReset(user.email)
    const first = linkIn((await smtp.waitFor(user.email, 1))[0], '/reset-password/')
    await askReset(user.email)
    const second = linkIn((await smtp.waitFor(user.email, 2))[1], '/reset-password/')
    assert.notEqual(first, second)
    assert.equal((await new PanelClient().get(pathOf(first))).status, 404, 'a newer link replaces the older')
    const refused = new PanelClient()
    await refused.get('/login')
    const tried = await refused.post(pathOf(first), { password: 'brand-new-pass', password_confirmation: 'brand-new-pass' })
    assert.equal(tried.status, 404)
    assert.include(textOf(tried.html), 'This link no longer works')

    await db.from('email_tokens').where('user_id', user.userId).update({ expires_at: new Date(Date.now() - 1000) })
    assert.equal((await new PanelClient().get(pathOf(second))).status, 404, 'expired after its 30 minutes')
    await db.from('email_tokens').where('user_id', user.userId).update({ expires_at: new Date(Date.now() + 60_000) })
    assert.equal((await new PanelClient().get(pathOf(second))).status, 200)

    // The password changed on the Security page: the link made before it is void.
    await clearFormThrottles('127.0.0.1', [user.userId])
    const owner = await signedIn(user.email)
    await owner.get('/dashboard/password')
    await owner.post('/dashboard/password', { current_password: 'password123', password: 'changed-pass-1', password_confirmation: 'changed-pass-1' })
    assert.equal((await new PanelClient().get(pathOf(second))).status, 404)
    assert.equal((await new PanelClient().login(user.email, 'changed-pass-1')).location, '/dashboard')
  })

  test('a link mailed before the account was disabled does not work once it is enabled again', async ({ assert }) => {
    const user = await seedUser()
    await clearMailThrottles('127.0.0.1', [user.email])
    await askReset(user.email)
    const link = linkIn((await smtp.waitFor(user.email))[0], '/reset-password/')
    assert.equal((await new PanelClient().get(pathOf(link))).status, 200)
    const base = { id: user.userId, role: 'user' as const, planId: null }
    await updateUser({ ...base, disabled: true })
    assert.equal((await new PanelClient().get(pathOf(link))).status, 404, 'refused while disabled')
    await updateUser({ ...base, disabled: false })
    assert.equal((await new PanelClient().get(pathOf(link))).status, 404, 'and still after: the link died with the disable')
    const visitor = new PanelClient()
    await visitor.get('/login')
    assert.equal((await visitor.post(pathOf(link), { password: 'brand-new-pass', password_confirmation: 'brand-new-pass' })).status, 404)
    assert.equal((await new PanelClient().login(user.email, 'password123')).location, '/dashboard', 'the password is unchanged')
  })

  test('an unknown or disabled address gets the same answer and no e-mail', async ({ assert }) => {
    const user = await seedUser()
    const disabled = await seedUser()
    await db.from('users').where('id', disabled.userId).update({ disabled_at: new Date() })
    const known = await askReset(user.email)
    const unknown = await askReset('nobody-here@test.local')
    const off = await askReset(disabled.email)
    for (const other of [unknown, off]) {
      assert.equal(other.asked.status, known.asked.status)
      assert.equal(other.asked.location, known.asked.location)
      assert.equal(textOf(other.page!.html), textOf(known.page!.html))
    }
    await smtp.waitFor(user.email)
    await outboxIdle()
    assert.lengthOf(smtp.messages, 1, 'only the enabled account got one')
    assert.equal(await db.from('email_tokens').whereIn('user_id', [disabled.userId]).count('* as n').first().then((r) => Number(r.n)), 0)
  })

  test('throttled per address and per IP, whether or not the address has an account', async ({ assert }) => {
    for (const email of ['throttle-me@test.local']) {
      await clearMailThrottles('127.0.0.1', [email])
      for (let i = 0; i < 3; i++) assert.equal((await askReset(email)).asked.status, 302)
      const held = await askReset(email)
      assert.equal(held.asked.status, 429)
      assert.match(textOf(held.asked.html), /Too many attempts|try again/i)
      assert.isAbove(Number(held.asked.headers.get('retry-after')), 0)
    }
    // Another address from the same IP: the IP's budget (10) runs out too.
    await clearMailThrottles('127.0.0.1')
    const statuses: number[] = []
    for (let i = 0; i < 11; i++) statuses.push((await askReset(`spray-${i}@test.local`)).asked.status)
    assert.deepEqual(statuses, [...Array(10).fill(302), 429])
    await outboxIdle()
    assert.lengthOf(smtp.messages, 0)
  })

  test('hostile input: clear form errors, never a 500', async ({ assert }) => {
    const client = new PanelClient()
    await client.get('/forgot-password')
    for (const email of ['a\u0000b@test.local', `${'x'.repeat(300)}@test.local`, '', 'not-an-address', '<script>@x']) {
      const answer = await client.post('/forgot-password', { email })
      assert.equal(answer.status, 302, JSON.stringify(email))
      assert.equal(pathOf(answer.location!), '/forgot-password')
      const page = await client.follow(answer)
      assert.equal(page.status, 200)
      assert.match(page.html, /aria-invalid="true"/, 'the field says what is wrong')
    }
    for (const token of ['%00abc', 'a'.repeat(43).slice(0, 42) + '%00', '..%2F..%2Fetc', 'x'.repeat(4000), '%E2%80%AE' + 'a'.repeat(40), "a'%22%3Cb%3E"]) {
      const page = await client.get(`/reset-password/${token}`)
      assert.equal(page.status, 404, token.slice(0, 20))
      assert.include(page.html, 'data-reset-invalid')
      const posted = await client.post(`/reset-password/${token}`, { password: 'brand-new-pass', password_confirmation: 'brand-new-pass' })
      assert.equal(posted.status, 404)
      const verify = await client.get(`/verify-email/${token}`)
      assert.equal(verify.location, '/login')
    }
    await client.get('/forgot-password')
    const nul = await client.post('/verify-email/resend', { email: 'a\u0000@test.local' })
    assert.equal(nul.status, 302)
  })

  test('links start with the saved site address, never the Host a request names; without one e-mail is off', async ({ assert }) => {
    const user = await seedUser()
    await clearMailThrottles('127.0.0.1', [user.email])
    await askReset(user.email)
    const [mail] = await smtp.waitFor(user.email)
    assert.match(linkIn(mail, '/reset-password/'), /^https:\/\/ai\.example\.test\/reset-password\//)

    // No APP_URL (the tests run without it) and no site address: nothing offered, nothing sent.
    await putSetting('mail_options', { productName: 'Acme AI', verifySignups: false, siteUrl: '' })
    smtp.messages = []
    assert.notInclude((await new PanelClient().get('/login')).html, 'href="/forgot-password"')
    const { asked } = await askReset(user.email)
    assert.equal(asked.location, '/login')
    await outboxIdle()
    assert.lengthOf(smtp.messages, 0)
  })

  test('without an SMTP server nothing is offered', async ({ assert }) => {
    await noMail()
    const login = await new PanelClient().get('/login')
    assert.notInclude(login.html, '/forgot-password')
    assert.equal((await new PanelClient().get('/forgot-password')).location, '/login')
    const client = new PanelClient()
    await client.get('/login')
    assert.equal((await client.post('/forgot-password', { email: 'x@test.local' })).location, '/login')
  })
})

test.group('E-mail: sign-up verification', (group) => {
  group.setup(async () => {
    await resetDatabase()
    smtp = await new MockSmtp().start()
    await setRegistrationOpen(true)
    return async () => {
      await noMail()
      await setReferralTerms({ inviterCredit: '0', inviteeCredit: '0' }, cliActor())
      await smtp.stop()
    }
  })
  group.each.setup(async () => {
    await useMockSmtp({ verifySignups: true })
    smtp.messages = []
    await clearLoginThrottles('127.0.0.1')
    await clearFormThrottles('127.0.0.1')
    await clearMailThrottles('127.0.0.1')
  })

  async function register(email: string, ref?: string) {
    const client = new PanelClient()
    await client.get(ref ? `/register?ref=${ref}` : '/register')
    const answer = await client.post('/register', { email, password: 'password123', password_confirmation: 'password123', ...(ref ? { ref } : {}) })
    return { client, answer }
  }

  test('an unverified sign-up cannot sign in, gets its welcome credit once at verification', async ({ assert }) => {
    await setReferralTerms({ inviterCredit: '0', inviteeCredit: '5' }, cliActor())
    const host = await seedUser()
    await db.from('users').where('id', host.userId).update({ referral_code: 'INVITE42' })
    const email = `new-${Date.now()}@test.local`
    await clearMailThrottles('127.0.0.1', [email])
    const { client, answer } = await register(email, 'INVITE42')
    assert.equal(answer.location, '/verify-email')
    const check = await client.follow(answer)
    assert.include(textOf(check.html), `We sent a link to ${email}`)
    assert.equal((await client.get('/dashboard')).location, '/login', 'not signed in')
    const user = await db.from('users').where('email', email).first()
    assert.isNull(user.email_verified_at)
    assert.equal(user.referred_by, host.userId, 'the inviter is recorded at sign-up')
    assert.equal(Number((await balanceAndLedger(user.id)).balance), 0, 'no credit before verification')

    const refused = await new PanelClient().login(email, 'password123')
    assert.equal(refused.location, '/verify-email')
    const notice = await new PanelClient().get('/verify-email')
    assert.equal(notice.status, 200)
    const blocked = new PanelClient()
    const attempt = await blocked.login(email, 'password123')
    const page = await blocked.follow(attempt)
    assert.include(textOf(page.html), 'Your e-mail address is not confirmed yet')
    assert.include(page.html, 'data-resend-form')
    assert.include(page.html, `value="${email}"`)

    const first = linkIn((await smtp.waitFor(email, 1))[0], '/verify-email/')
    const resent = await blocked.post('/verify-email/resend', { email })
    assert.equal(resent.location, '/login')
    const second = linkIn((await smtp.waitFor(email, 2))[1], '/verify-email/')
    assert.notEqual(first, second)
    const stale = await new PanelClient().get(pathOf(first))
    assert.equal(stale.location, '/login')
    assert.isNull((await db.from('users').where('id', user.id).first()).email_verified_at, 'the replaced link verified nothing')

    const [a, b] = await Promise.all([new PanelClient().get(pathOf(second)), new PanelClient().get(pathOf(second))])
    assert.deepEqual([a.location, b.location], ['/login', '/login'])
    assert.isNotNull((await db.from('users').where('id', user.id).first()).email_verified_at)
    const money = await balanceAndLedger(user.id)
    assert.equal(Number(money.balance), 5, 'the welcome credit, paid once')
    assert.equal(money.balance, money.ledger)
    assert.lengthOf(await db.from('audit_log').where('action', 'referral.welcome').where('subject_id', user.id), 1)
    assert.equal((await new PanelClient().login(email, 'password123')).location, '/dashboard')
  })

  test('an administrator sees who waits and releases them: Mark address confirmed, audited, the credit paid once; the API says email_verified', async ({ assert }) => {
    await setReferralTerms({ inviterCredit: '0', inviteeCredit: '3' }, cliActor())
    const host = await seedUser()
    await db.from('users').where('id', host.userId).update({ referral_code: 'INVITE44' })
    const email = `stuck-${Date.now()}@test.local`
    await clearMailThrottles('127.0.0.1', [email])
    await register(email, 'INVITE44')
    const stuck = await db.from('users').where('email', email).firstOrFail()
    const adminEmail = `ops-${Date.now()}@test.local`
    await createUser({ email: adminEmail, password: 'password123', role: 'admin' })
    const opsKey = (await createApiKey({ userRef: adminEmail, name: 'ops', manage: true })).key
    const admin = await signedIn(adminEmail)

    const list = await admin.get('/admin/users?status=unconfirmed')
    assert.include(list.html, `>${email}</a>`, 'the filter lists the waiting account')
    assert.notInclude(list.html, `>${host.email}</a>`, 'and not a confirmed one')
    assert.include(list.html, 'unconfirmed')
    assert.equal((await adminApi('GET', `/users/${stuck.id}`, opsKey)).body.email_verified, false)
    assert.equal((await adminApi('GET', `/users/${host.userId}`, opsKey)).body.email_verified, true)

    const page = await admin.get(`/admin/users/${stuck.id}`)
    assert.include(page.html, 'data-email-state="waiting"')
    assert.include(page.html, `action="/admin/users/${stuck.id}/email/confirm"`)
    const [a, b] = await Promise.all([admin.post(`/admin/users/${stuck.id}/email/confirm`), admin.post(`/admin/users/${stuck.id}/email/confirm`)])
    assert.deepEqual([a.status, b.status], [302, 302], 'two clicks at once: one confirms, the other is told it was done')
    assert.include([a.location, b.location], `/admin/users/${stuck.id}`)
    const after = await admin.get(`/admin/users/${stuck.id}`)
    assert.include(after.html, 'data-email-state="confirmed"')
    assert.notInclude(after.html, '/email/confirm"')
    assert.isNotNull((await db.from('users').where('id', stuck.id).firstOrFail()).email_verified_at)
    const money = await balanceAndLedger(stuck.id)
    assert.equal(Number(money.balance), 3, 'the waiting welcome credit, paid once')
    assert.equal(money.balance, money.ledger)
    const audit = await db.from('audit_log').where('action', 'user.verify_email').where('subject_id', stuck.id)
    assert.lengthOf(audit, 1)
    assert.equal(audit[0].actor, adminEmail)
    assert.include(audit[0].summary, 'marked confirmed by an administrator')
    assert.equal((await adminApi('GET', `/users/${stuck.id}`, opsKey)).body.email_verified, true)
    assert.equal((await new PanelClient().login(email, 'password123')).location, '/dashboard', 'released: the account signs in')

    await admin.get(`/admin/users/${stuck.id}`)
    const again = await admin.post(`/admin/users/${stuck.id}/email/confirm`)
    assert.include(textOf((await admin.get(`/admin/users/${stuck.id}`)).html), 'has already confirmed the address')
    assert.equal(again.status, 302)
    const plain = await signedIn(host.email)
    await plain.get('/dashboard')
    assert.notEqual((await plain.post(`/admin/users/${stuck.id}/email/confirm`)).location, `/admin/users/${stuck.id}`, 'not for a non-admin')
  })

  test('verification off: sign-ups sign in at once; an account still waiting is verified (and credited) at its sign-in', async ({ assert }) => {
    await setReferralTerms({ inviterCredit: '0', inviteeCredit: '2' }, cliActor())
    const host = await seedUser()
    await db.from('users').where('id', host.userId).update({ referral_code: 'INVITE43' })
    const email = `wait-${Date.now()}@test.local`
    await register(email, 'INVITE43')
    await putSetting('mail_options', { productName: '', verifySignups: false })
    const first = new PanelClient()
    assert.equal((await first.login(email, 'password123')).location, '/dashboard')
    await new PanelClient().login(email, 'password123')
    const user = await db.from('users').where('email', email).first()
    assert.isNotNull(user.email_verified_at)
    assert.equal(Number((await balanceAndLedger(user.id)).balance), 2)

    const direct = `direct-${Date.now()}@test.local`
    const { answer } = await register(direct)
    assert.equal(answer.location, '/dashboard')
  })

  test('no SMTP server: the switch alone does not hold sign-ups', async ({ assert }) => {
    await db.from('app_settings').where('key', 'smtp').delete()
    const { answer } = await register(`nosmtp-${Date.now()}@test.local`)
    assert.equal(answer.location, '/dashboard')
  })

  test('accounts made by an administrator, and those existing before, are verified', async ({ assert }) => {
    const { user } = await createUser({ email: `admin-made-${Date.now()}@test.local`, password: 'password123' })
    assert.isNotNull((await db.from('users').where('id', user.id).first()).email_verified_at)
    await db.table('users').insert({ email: `raw-${Date.now()}@test.local`, password: 'x', role: 'user', created_at: new Date(), updated_at: new Date() })
    assert.equal(Number((await db.from('users').whereNull('email_verified_at').count('* as n').first()).n), 0)
  })
})

test.group('E-mail: the Settings section', (group) => {
  group.setup(async () => {
    await resetDatabase()
    smtp = await new MockSmtp({ password: 's3cret-pass' }).start()
    return async () => {
      await noMail()
      await smtp.stop()
    }
  })

  test('saves the server, never shows the password back, and the test e-mail says what happened', async ({ assert }) => {
    await noMail()
    await createUser({ email: 'mail-admin@test.local', password: 'admin-password', role: 'admin' })
    await clearLoginThrottles('127.0.0.1')
    const admin = await signedIn('mail-admin@test.local', 'admin-password')
    const before = await admin.get('/admin/settings')
    assert.include(before.html, 'data-mail-source="none"')
    assert.notInclude(before.html, 'data-mail-test-form', 'no test button without a server')

    const bad = await admin.post('/admin/settings/mail', { host: 'smtp host!', port: '25', from: 'noreply@gateway.test' })
    assert.equal(bad.status, 302)
    assert.isNull(await db.from('app_settings').where('key', 'smtp').first(), 'refused, nothing saved')
    assert.include(before.html, 'data-mail-site-missing', 'says e-mail needs a site address')
    for (const siteUrl of ['javascript:alert(1)', 'https://user:pw@evil.test', 'https://a.test/?x=1', 'ftp://a.test', 'https://a.test/\u0000']) {
      await admin.get('/admin/settings')
      await admin.post('/admin/settings/mail', { siteUrl, host: '127.0.0.1', port: '25', from: 'noreply@gateway.test' })
      assert.isNull(await db.from('app_settings').where('key', 'smtp').first(), `${siteUrl} refused, nothing saved`)
    }

    await admin.get('/admin/settings')
    const saved = await admin.post('/admin/settings/mail', {
      productName: 'Acme AI',
      siteUrl: 'https://ai.example.test/',
      host: '127.0.0.1',
      port: String(smtp.port),
      user: 'mailer',
      password: 's3cret-pass',
      from: 'noreply@gateway.test',
      verifySignups: '1',
    })
    assert.equal(saved.location, '/admin/settings#mail')
    const row = await db.from('app_settings').where('key', 'smtp').first()
    assert.notInclude(JSON.stringify(row.value), 's3cret-pass', 'kept encrypted')
    const page = await admin.get('/admin/settings')
    assert.notInclude(page.html, 's3cret-pass')
    assert.include(page.html, 'Set. Empty keeps it.')
    assert.include(page.html, 'data-mail-source="panel"')
    assert.include(page.html, 'value="https://ai.example.test"', 'the site address kept, without its trailing slash')
    assert.notInclude(page.html, 'data-mail-site-missing')
    const audit = await db.from('audit_log').where('action', 'settings.mail').orderBy('id', 'desc').first()
    assert.notInclude(JSON.stringify(audit), 's3cret-pass')

    // Saved again without typing the password: kept, and the server takes it.
    await admin.post('/admin/settings/mail', { productName: 'Acme AI', host: '127.0.0.1', port: String(smtp.port), user: 'mailer', password: '', from: 'noreply@gateway.test' })
    await admin.get('/admin/settings')
    const sent = await admin.post('/admin/settings/mail/test')
    const told = textOf((await admin.follow(sent)).html)
    assert.include(told, 'A test e-mail was sent to mail-admin@test.local', /test e-mail[^.]*\./.exec(told)?.[0])
    const [mail] = await smtp.waitFor('mail-admin@test.local')
    assert.equal(mail.user, 'mailer')
    assert.include(mail.raw, 'Acme AI')

    smtp.refuse = true
    const failed = await admin.post('/admin/settings/mail/test')
    assert.include(textOf((await admin.follow(failed)).html), 'The test e-mail was not sent')
    smtp.refuse = false
  })
})
