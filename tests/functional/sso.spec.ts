import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import env from '#start/env'
import { createUser } from '#actions/create_user'
import { cliActor } from '#actions/audit'
import { startTwoFactor } from '#actions/start_two_factor'
import { enableTwoFactor } from '#actions/enable_two_factor'
import { setRegistrationOpen } from '#services/app_settings'
import { setReferralTerms } from '#actions/referrals'
import { clearLoginThrottles } from '#services/login_throttle'
import { forgetOidcCaches } from '#services/sso/oidc_provider'
import { base32Decode, hotp, timeStep } from '#services/totp'
import { baseUrl, resetDatabase, seedUser } from '#tests/helpers'
import { PageClient, htmlText } from '#tests/page_client'
import { MockSso } from '#tests/fixtures/mock_sso'

/**
 * Single sign-on (app/services/sso/) against a mock OpenID Connect provider
 * and a mock GitHub (tests/fixtures/mock_sso.ts): the redirects are followed
 * by hand, the gateway's cookies kept by PageClient, the provider's leg made
 * with plain fetch (the mock keeps no session).
 */
let sso: MockSso

const SSO_ENV = [
  'OIDC_ISSUER',
  'OIDC_CLIENT_ID',
  'OIDC_CLIENT_SECRET',
  'OIDC_BUTTON_LABEL',
  'OIDC_LINK_BY_EMAIL',
  'GITHUB_CLIENT_ID',
  'GITHUB_CLIENT_SECRET',
  'GITHUB_OAUTH_BASE_URL',
  'GITHUB_API_BASE_URL',
] as const

function turnOn() {
  env.set('OIDC_ISSUER', sso.issuer)
  env.set('OIDC_CLIENT_ID', sso.clientId)
  env.set('OIDC_CLIENT_SECRET', sso.clientSecret)
  env.set('OIDC_BUTTON_LABEL', 'Acme SSO')
  env.set('GITHUB_CLIENT_ID', sso.githubClientId)
  env.set('GITHUB_CLIENT_SECRET', sso.githubClientSecret)
  env.set('GITHUB_OAUTH_BASE_URL', sso.githubOauthBase)
  env.set('GITHUB_API_BASE_URL', sso.githubApiBase)
}

function turnOff() {
  for (const key of SSO_ENV) env.set(key, '' as any)
  env.set('OIDC_LINK_BY_EMAIL', false)
}

/** Start → provider → callback; returns the gateway's answer to the callback. */
async function viaProvider(client: PageClient, start: string, tamper?: (callback: URL) => void) {
  const begun = start.startsWith('POST ') ? await client.post(start.slice(5), {}) : await client.get(start)
  if (begun.status !== 302 || !begun.location?.startsWith(`http://127.0.0.1:${sso.port}/`)) {
    throw new Error(`expected a redirect to the provider, got ${begun.status} ${begun.location}`)
  }
  const atProvider = await fetch(begun.location, { redirect: 'manual' })
  const back = new URL(atProvider.headers.get('location')!)
  if (`${back.origin}` !== baseUrl()) throw new Error(`provider sent the browser to ${back}`)
  tamper?.(back)
  const callback = await client.get(back.pathname + back.search)
  return { ...callback, callbackUrl: back }
}

/** The /login page's error message after a refused sign-in. */
async function loginError(client: PageClient) {
  const page = await client.get('/login')
  const match = /<div class="flash flash--error" role="alert">([^<]*)<\/div>/.exec(page.body)
  return match ? htmlText(match[1]) : null
}

let auditFloor = 0
async function audits(action: string) {
  return db.from('audit_log').where('id', '>', auditFloor).where('action', action).orderBy('id')
}

test.group('Single sign-on: OpenID Connect', (group) => {
  group.setup(async () => {
    sso = await new MockSso().start()
    return async () => {
      turnOff()
      await sso.stop()
    }
  })
  group.each.setup(async () => {
    await resetDatabase()
    auditFloor = Number((await db.from('audit_log').max('id as id').first())?.id ?? 0)
    await setRegistrationOpen(true)
    await clearLoginThrottles('127.0.0.1')
    sso.reset()
    forgetOidcCaches()
    turnOff()
    turnOn()
  })

  test('off by default: no buttons on /login, /auth/oidc says it is not set up', async ({ assert }) => {
    turnOff()
    const client = new PageClient()
    const page = await client.get('/login')
    assert.notInclude(page.body, 'data-sso')
    const start = await client.get('/auth/oidc')
    assert.equal(start.location, '/login')
    assert.equal(await loginError(client), 'That sign-in method is not set up on this gateway.')
    assert.equal((await client.get('/auth/okta')).status, 404)
  })

  test('sign-up through the provider: PKCE S256, state and nonce sent; an account without a password on the default plan, the identity linked, audited; the next sign-in finds it', async ({ assert }) => {
    const client = new PageClient()
    const login = await client.get('/login')
    assert.include(login.body, 'data-sso-provider="oidc"')
    assert.include(login.body, 'Continue with Acme SSO')
    assert.include(login.body, 'data-sso-provider="github"')

    const done = await viaProvider(client, '/auth/oidc')
    assert.equal(done.status, 302)
    assert.equal(done.location, '/dashboard')
    const asked = sso.authorizeRequests[0]
    assert.equal(asked.get('response_type'), 'code')
    assert.equal(asked.get('client_id'), sso.clientId)
    assert.equal(asked.get('code_challenge_method'), 'S256')
    assert.match(asked.get('code_challenge')!, /^[A-Za-z0-9_-]{43}$/)
    assert.match(asked.get('state')!, /^[A-Za-z0-9_-]{43}$/)
    assert.match(asked.get('nonce')!, /^[A-Za-z0-9_-]{43}$/)
    assert.equal(asked.get('scope'), 'openid email profile')
    assert.equal(asked.get('redirect_uri'), `${baseUrl()}/auth/oidc/callback`)
    assert.equal((await client.get('/dashboard')).status, 200)

    const user = await db.from('users').where('email', 'person@example.com').firstOrFail()
    assert.isNull(user.password)
    assert.equal(user.role, 'user')
    const identity = await db.from('user_identities').where('user_id', user.id).firstOrFail()
    assert.deepInclude(identity, { provider: 'oidc', subject: 'person-1', email: 'person@example.com' })
    assert.lengthOf(await audits('user.register'), 1)
    assert.lengthOf(await audits('user.identity_link'), 1)

    // No password: the login form does not let it in (no 500 either).
    const form = new PageClient()
    await form.get('/login')
    assert.equal((await form.post('/login', { email: 'person@example.com', password: '' })).status, 302)

    // Again, another browser: the same account (by subject, not e-mail), audited as an SSO sign-in.
    sso.knobs.person = { ...sso.knobs.person, email: 'renamed@example.com' }
    const again = await viaProvider(new PageClient(), '/auth/oidc')
    assert.equal(again.location, '/dashboard')
    assert.equal(Number((await db.from('users').count('* as n').first()).n), 1)
    assert.equal((await db.from('user_identities').where('id', identity.id).first()).email, 'renamed@example.com')
    assert.lengthOf(await audits('user.sso_login'), 1)
  })

  test('the e-mail from /userinfo when the id_token has none; a role claim from the provider is ignored', async ({ assert }) => {
    sso.knobs.emailOnlyInUserinfo = true
    sso.knobs.person = { sub: 'p-2', email: 'info@example.com', emailVerified: true, claims: { role: 'admin', roles: ['admin'] } }
    const done = await viaProvider(new PageClient(), '/auth/oidc')
    assert.equal(done.location, '/dashboard')
    assert.include(sso.calls, 'GET /oidc/userinfo')
    assert.equal((await db.from('users').where('email', 'info@example.com').firstOrFail()).role, 'user')
  })

  const refusals: Array<[string, (s: MockSso) => void, string]> = [
    ['wrong audience', (s) => (s.knobs.wrongAud = true), "The identity provider's answer could not be verified, so you were not signed in."],
    ['expired id_token', (s) => (s.knobs.expired = true), "The identity provider's answer could not be verified, so you were not signed in."],
    ['bad signature', (s) => (s.knobs.badSignature = true), "The identity provider's answer could not be verified, so you were not signed in."],
    ['alg none', (s) => (s.knobs.algNone = true), "The identity provider's answer could not be verified, so you were not signed in."],
    ['HS256 with the public key', (s) => (s.knobs.hsWithPublicKey = true), "The identity provider's answer could not be verified, so you were not signed in."],
    ['wrong nonce', (s) => (s.knobs.wrongNonce = true), "The identity provider's answer could not be verified, so you were not signed in."],
    [
      'unverified e-mail',
      (s) => (s.knobs.person = { sub: 'p-3', email: 'unverified@example.com', emailVerified: false }),
      'Your e-mail address is not verified at the identity provider. Verify it there, then try again.',
    ],
    ['access denied at the provider', (s) => (s.knobs.deny = true), 'The sign-in was cancelled or refused at the identity provider.'],
  ]
  for (const [name, misbehave, message] of refusals) {
    test(`refused: ${name}: back on /login with a message, no account made`, async ({ assert }) => {
      misbehave(sso)
      const client = new PageClient()
      const done = await viaProvider(client, '/auth/oidc')
      assert.equal(done.status, 302)
      assert.equal(done.location, '/login')
      assert.equal(await loginError(client), message)
      assert.equal(Number((await db.from('users').count('* as n').first()).n), 0)
      assert.equal((await client.get('/dashboard')).location, '/login')
    })
  }

  test('state: a tampered one, a replayed callback and a callback from another browser are refused', async ({ assert }) => {
    const expired = 'The sign-in expired or was not started in this browser. Please try again.'
    const client = new PageClient()
    const tampered = await viaProvider(client, '/auth/oidc', (url) => url.searchParams.set('state', 'x'.repeat(43)))
    assert.equal(tampered.location, '/login')
    assert.equal(await loginError(client), expired)

    // The right callback, then the same once more: the flow was used up. Replayed with the cookie from
    // before the callback (the session lives in the cookie), the provider's code is used up instead.
    let before = new Map<string, string>()
    const ok = await viaProvider(client, '/auth/oidc', () => (before = new Map(client.cookies)))
    assert.equal(ok.location, '/dashboard')
    const again = new PageClient()
    again.cookies = new Map(client.cookies)
    assert.equal((await again.get(ok.callbackUrl.pathname + ok.callbackUrl.search)).location, '/login')
    const stale = new PageClient()
    stale.cookies = before
    assert.equal((await stale.get(ok.callbackUrl.pathname + ok.callbackUrl.search)).location, '/login')
    assert.equal(await loginError(stale), 'The identity provider could not be reached or gave an unusable answer. Please try again later.')

    // A callback carried to another browser (login CSRF): no flow there.
    const victim = new PageClient()
    const other = await viaProvider(new PageClient(), '/auth/oidc', () => {})
    const stolen = await victim.get(other.callbackUrl.pathname + other.callbackUrl.search)
    assert.equal(stolen.location, '/login')
    assert.equal(await loginError(victim), expired)
  })

  test('discovery down: a clear message on /login, no 500; the keys are fetched again for an unknown kid', async ({ assert }) => {
    sso.knobs.discoveryDown = true
    const client = new PageClient()
    const start = await client.get('/auth/oidc')
    assert.equal(start.location, '/login')
    assert.equal(await loginError(client), 'The identity provider could not be reached or gave an unusable answer. Please try again later.')

    sso.knobs.discoveryDown = false
    assert.equal((await viaProvider(new PageClient(), '/auth/oidc')).location, '/dashboard')
    const jwksBefore = sso.calls.filter((c) => c === 'GET /oidc/jwks').length
    assert.equal(jwksBefore, 1)
    // Keys cached: a second sign-in does not fetch them; after a rotation, the unknown kid fetches them once.
    assert.equal((await viaProvider(new PageClient(), '/auth/oidc')).location, '/dashboard')
    assert.equal(sso.calls.filter((c) => c === 'GET /oidc/jwks').length, 1)
    await new Promise((resolve) => setTimeout(resolve, 1100))
    sso.rotateKey()
    assert.equal((await viaProvider(new PageClient(), '/auth/oidc')).location, '/dashboard')
    assert.equal(sso.calls.filter((c) => c === 'GET /oidc/jwks').length, 2)
    assert.equal(sso.calls.filter((c) => c === 'GET /oidc/.well-known/openid-configuration').length, 2, 'discovery cached once it answered')
  })

  test('an existing account with the same e-mail: refused unless OIDC_LINK_BY_EMAIL=true, which links it', async ({ assert }) => {
    const seeded = await seedUser({ email: 'person@example.com' })
    // Signed up at /register while sign-ups had to confirm their address, and never did
    await db.from('users').where('id', seeded.userId).update({ email_verified_at: null })
    const client = new PageClient()
    assert.equal((await viaProvider(client, '/auth/oidc')).location, '/login')
    assert.equal(
      await loginError(client),
      'An account with this e-mail address already exists. Log in with its password, then link this sign-in method on the Security page.'
    )
    assert.lengthOf(await db.from('user_identities'), 0)

    env.set('OIDC_LINK_BY_EMAIL', true)
    assert.equal((await viaProvider(new PageClient(), '/auth/oidc')).location, '/dashboard')
    const identity = await db.from('user_identities').firstOrFail()
    assert.equal(identity.user_id, seeded.userId)
    assert.equal((await audits('user.identity_link'))[0].summary, 'oidc identity person@example.com linked by e-mail')
    const verified = await db.from('users').where('id', seeded.userId).firstOrFail()
    assert.isNotNull(verified.email_verified_at, 'the provider vouched for the address: confirmed')
  })

  test('linking by e-mail: an address that only lower-cases into an account\'s (Kelvin sign K) is not that account\'s; a CR/LF in one makes no account', async ({ assert }) => {
    const seeded = await seedUser({ email: 'kate@example.com' })
    env.set('OIDC_LINK_BY_EMAIL', true)
    // Another mailbox, verified by the provider for someone else; JavaScript lower-cases U+212A to "k".
    sso.knobs.person = { sub: 'mallory', email: '\u212Aate@example.com', emailVerified: true }
    const client = new PageClient()
    assert.equal((await viaProvider(client, '/auth/oidc')).location, '/login')
    assert.lengthOf(await db.from('user_identities'), 0, 'not linked to kate@example.com')
    assert.equal((await client.get('/dashboard')).location, '/login', 'nobody signed in')
    assert.lengthOf(await db.from('users').whereNot('id', seeded.userId), 0, 'no account made for it either')

    // Nor does an address with a line break in it make an account (it would head every mail to it).
    env.set('OIDC_LINK_BY_EMAIL', false)
    sso.knobs.person = { sub: 'crlf', email: 'new@example.com\r\nBcc: all@example.com', emailVerified: true }
    assert.equal((await viaProvider(new PageClient(), '/auth/oidc')).location, '/login')
    assert.lengthOf(await db.from('users').whereNot('id', seeded.userId), 0, 'no account with that address')
    env.set('OIDC_LINK_BY_EMAIL', true)

    // Case alone still matches (the provider's KATE@ is kate@'s account).
    sso.knobs.person = { sub: 'kate', email: 'KATE@Example.com', emailVerified: true }
    assert.equal((await viaProvider(new PageClient(), '/auth/oidc')).location, '/dashboard')
    assert.equal((await db.from('user_identities').firstOrFail()).user_id, seeded.userId)
  })

  test('linking by e-mail never links an administrator\'s account (OIDC_LINK_BY_EMAIL on): refused with a message naming the Security page; linked from there it signs in', async ({ assert }) => {
    const { user } = await createUser({ email: 'person@example.com', password: 'password123', role: 'admin' })
    env.set('OIDC_LINK_BY_EMAIL', true)
    const client = new PageClient()
    assert.equal((await viaProvider(client, '/auth/oidc')).location, '/login')
    assert.equal(
      await loginError(client),
      'This e-mail address belongs to an administrator, whose account is never linked by e-mail. Log in with the password, then link this sign-in method on the Security page.'
    )
    assert.equal((await client.get('/admin')).location, '/login', 'nobody signed in')
    assert.lengthOf(await db.from('user_identities'), 0)
    assert.lengthOf(await audits('user.identity_link'), 0)

    // The admin links it while signed in; then it signs the admin in.
    const admin = new PageClient()
    await admin.login('person@example.com', 'password123')
    await admin.get('/dashboard/security')
    assert.equal((await viaProvider(admin, 'POST /dashboard/security/identities/oidc/link')).location, '/dashboard/security#identities')
    assert.equal((await db.from('user_identities').firstOrFail()).user_id, user.id)
    assert.equal((await viaProvider(new PageClient(), '/auth/oidc')).location, '/admin')
  })

  test('registration closed: an unknown identity is refused; a disabled account is refused', async ({ assert }) => {
    await setRegistrationOpen(false)
    const client = new PageClient()
    assert.equal((await viaProvider(client, '/auth/oidc')).location, '/login')
    assert.equal(await loginError(client), 'There is no account for this e-mail address and registration is closed.')
    assert.lengthOf(await db.from('users'), 0)

    await setRegistrationOpen(true)
    assert.equal((await viaProvider(new PageClient(), '/auth/oidc')).location, '/dashboard')
    await db.from('users').where('email', 'person@example.com').update({ disabled_at: new Date() })
    const disabled = new PageClient()
    assert.equal((await viaProvider(disabled, '/auth/oidc')).location, '/login')
    assert.equal(await loginError(disabled), 'This account is disabled.')
  })

  test('an invitation from /register?ref= carries through the provider: the new account is referred and welcomed', async ({ assert }) => {
    const host = await seedUser({ email: 'host@example.com' })
    await db.from('users').where('id', host.userId).update({ referral_code: 'HOSTCODE' })
    await setReferralTerms({ inviterCredit: '2', inviteeCredit: '1' }, cliActor())
    try {
      const client = new PageClient()
      const register = await client.get('/register?ref=HOSTCODE')
      assert.include(register.body, 'href="/auth/oidc?ref=HOSTCODE"')
      assert.equal((await viaProvider(client, '/auth/oidc?ref=HOSTCODE')).location, '/dashboard')
      const invitee = await db.from('users').where('email', 'person@example.com').firstOrFail()
      assert.equal(invitee.referred_by, host.userId)
      assert.equal(Number(invitee.balance), 1)
    } finally {
      await setReferralTerms({ inviterCredit: '0', inviteeCredit: '0' }, cliActor())
    }
  })

  test('two-factor sign-in still applies after SSO; an admin lands in /admin (the role is the account row\'s)', async ({ assert }) => {
    const { user } = await createUser({ email: 'boss@example.com', password: 'password123', role: 'admin' })
    await db.table('user_identities').insert({ user_id: user.id, provider: 'oidc', subject: 'boss', email: 'boss@example.com' })
    sso.knobs.person = { sub: 'boss', email: 'boss@example.com', emailVerified: true }
    const admin = new PageClient()
    assert.equal((await viaProvider(admin, '/auth/oidc')).location, '/admin')
    assert.equal((await admin.get('/admin')).status, 200)

    const secret = await startTwoFactor(user.id)
    await enableTwoFactor(user.id, hotp(base32Decode(secret)!, timeStep()), cliActor())
    const second = new PageClient()
    assert.equal((await viaProvider(second, '/auth/oidc')).location, '/login/two-factor')
    assert.equal((await second.get('/admin')).location, '/login', 'not signed in before the second factor')
    assert.equal((await second.get('/login/two-factor')).status, 200)
  })
})

test.group('Single sign-on: GitHub and linked identities', (group) => {
  group.setup(async () => {
    sso = await new MockSso().start()
    return async () => {
      turnOff()
      await sso.stop()
    }
  })
  group.each.setup(async () => {
    await resetDatabase()
    auditFloor = Number((await db.from('audit_log').max('id as id').first())?.id ?? 0)
    await setRegistrationOpen(true)
    await clearLoginThrottles('127.0.0.1')
    sso.reset()
    forgetOidcCaches()
    turnOff()
    turnOn()
  })

  test('GitHub: sign-up with the primary verified address (PKCE sent); an unverified primary is refused; never linked by e-mail', async ({ assert }) => {
    sso.knobs.person = { sub: 'octo', email: 'Octo@Example.com', emailVerified: true }
    const done = await viaProvider(new PageClient(), '/auth/github')
    assert.equal(done.location, '/dashboard')
    assert.equal(sso.authorizeRequests[0].get('code_challenge_method'), 'S256')
    const identity = await db.from('user_identities').firstOrFail()
    assert.deepInclude(identity, { provider: 'github', subject: '4242', email: 'octo@example.com' })

    sso.knobs.person = { sub: 'other', email: 'other@example.com', emailVerified: false }
    sso.knobs.githubId = 99
    const unverified = new PageClient()
    assert.equal((await viaProvider(unverified, '/auth/github')).location, '/login')
    assert.equal(await loginError(unverified), 'Your e-mail address is not verified at the identity provider. Verify it there, then try again.')

    env.set('OIDC_LINK_BY_EMAIL', true)
    await seedUser({ email: 'third@example.com' })
    sso.knobs.person = { sub: 'third', email: 'third@example.com', emailVerified: true }
    sso.knobs.githubId = 100
    const byEmail = new PageClient()
    assert.equal((await viaProvider(byEmail, '/auth/github')).location, '/login')
    assert.include(await loginError(byEmail), 'already exists')
  })

  test('Security page: link GitHub while signed in, listed with Unlink; unlink; an identity of another account is refused', async ({ assert }) => {
    const seeded = await seedUser({ email: 'me@example.com' })
    const client = new PageClient()
    await client.login(seeded.email)
    let page = await client.get('/dashboard/security')
    assert.include(page.body, 'data-identities')
    assert.include(page.body, 'data-link-provider="github"')
    assert.include(page.body, 'data-link-provider="oidc"')
    assert.match(page.headers.get('content-security-policy')!, new RegExp(`form-action 'self'[^;]* http://127\\.0\\.0\\.1:${sso.port}`))

    // A provider that does not exist: back to the page with a message.
    assert.equal((await client.post('/dashboard/security/identities/okta/link', {})).location, '/dashboard/security#identities')
    assert.include((await client.get('/dashboard/security')).body, 'That sign-in method is not set up on this gateway.')

    // Another address at GitHub than the account's: linking needs only the signed-in session.
    sso.knobs.person = { sub: 'me-gh', email: 'elsewhere@example.com', emailVerified: true }
    const linked = await viaProvider(client, 'POST /dashboard/security/identities/github/link')
    assert.equal(linked.location, '/dashboard/security#identities')
    page = await client.get('/dashboard/security')
    assert.include(page.body, 'GitHub sign-in linked to this account.')
    assert.include(page.body, 'data-identity="github"')
    assert.include(page.body, 'elsewhere@example.com')
    assert.notInclude(page.body, 'data-link-provider="github"')
    assert.include(page.body, 'name="current_password"')
    assert.lengthOf(await audits('user.identity_link'), 1)

    // Now GitHub signs this account in, in a fresh browser.
    assert.equal((await viaProvider(new PageClient(), '/auth/github')).location, '/dashboard')

    // The identity is this account's: another account cannot link it.
    const other = await seedUser({ email: 'other@example.com' })
    const otherClient = new PageClient()
    await otherClient.login(other.email)
    await otherClient.get('/dashboard/security')
    assert.equal((await viaProvider(otherClient, 'POST /dashboard/security/identities/github/link')).location, '/dashboard/security#identities')
    assert.include((await otherClient.get('/dashboard/security')).body, 'This identity is already linked to another account.')

    // Unlink: someone else's id is refused, the own one goes.
    const identity = await db.from('user_identities').where('user_id', seeded.userId).firstOrFail()
    await otherClient.get('/dashboard/security')
    await otherClient.post(`/dashboard/security/identities/${identity.id}/unlink`, {})
    assert.lengthOf(await db.from('user_identities').where('id', identity.id), 1)
    await client.get('/dashboard/security')
    assert.equal((await client.post(`/dashboard/security/identities/${identity.id}/unlink`, {})).location, '/dashboard/security#identities')
    assert.lengthOf(await db.from('user_identities').where('id', identity.id), 0)
    assert.lengthOf(await audits('user.identity_unlink'), 1)
  })

  test('an account without a password cannot unlink its last identity; with a second one it can', async ({ assert }) => {
    const client = new PageClient()
    assert.equal((await viaProvider(client, '/auth/oidc')).location, '/dashboard')
    const user = await db.from('users').where('email', 'person@example.com').firstOrFail()
    const only = await db.from('user_identities').where('user_id', user.id).firstOrFail()
    let page = await client.get('/dashboard/security')
    assert.include(page.body, 'data-last-way-in')
    assert.notInclude(page.body, `/identities/${only.id}/unlink`)
    // No password to change; a Link button only for the provider not linked yet.
    assert.include(page.body, 'data-no-password')
    assert.notInclude(page.body, 'name="current_password"')
    assert.notInclude(page.body, 'data-link-provider="oidc"')
    assert.include(page.body, 'data-link-provider="github"')
    await client.post(`/dashboard/security/identities/${only.id}/unlink`, {})
    assert.lengthOf(await db.from('user_identities').where('user_id', user.id), 1)
    page = await client.get('/dashboard/security')
    assert.include(page.body, 'This is the only way into an account without a password: it cannot be unlinked.')

    sso.knobs.githubId = 7
    await viaProvider(client, 'POST /dashboard/security/identities/github/link')
    assert.lengthOf(await db.from('user_identities').where('user_id', user.id), 2)
    await client.get('/dashboard/security')
    await client.post(`/dashboard/security/identities/${only.id}/unlink`, {})
    assert.lengthOf(await db.from('user_identities').where('user_id', user.id), 1)
  })
})
