import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import encryption from '@adonisjs/core/services/encryption'
import env from '#start/env'
import { createUser } from '#actions/create_user'
import { cliActor } from '#actions/audit'
import { startTwoFactor } from '#actions/start_two_factor'
import { enableTwoFactor } from '#actions/enable_two_factor'
import { issuerAddress, setGithubSettings, setOidcSettings } from '#actions/set_sso_settings'
import { SSO_SETTING, storedSso } from '#services/sso/sso_panel_settings'
import { setRegistrationOpen } from '#services/app_settings'
import { clearLoginThrottles } from '#services/login_throttle'
import { clearFormThrottles } from '#services/form_throttle'
import { forgetOidcCaches } from '#services/sso/oidc_provider'
import { base32Decode, hotp, timeStep } from '#services/totp'
import { baseUrl, resetDatabase } from '#tests/helpers'
import { PageClient, htmlText } from '#tests/page_client'
import { MockSso } from '#tests/fixtures/mock_sso'

/**
 * Single sign-on set from the panel (Settings > Sign-in, app/actions/set_sso_settings.ts)
 * against the mock provider of sso.spec.ts, with no OIDC_* / GITHUB_CLIENT_* in the
 * environment (GITHUB_*_BASE_URL only point GitHub at the mock), and an SSO-only
 * account's first password on the Security page.
 */
let sso: MockSso
const ENV_KEYS = ['OIDC_ISSUER', 'OIDC_CLIENT_ID', 'OIDC_CLIENT_SECRET', 'OIDC_BUTTON_LABEL', 'OIDC_SCOPES', 'GITHUB_CLIENT_ID', 'GITHUB_CLIENT_SECRET'] as const

function envOff() {
  for (const key of ENV_KEYS) env.set(key, '' as any)
  env.set('OIDC_LINK_BY_EMAIL', false)
}

async function admin() {
  await createUser({ email: 'root@example.com', password: 'password123', role: 'admin' })
  const client = new PageClient()
  await client.login('root@example.com')
  await client.get('/admin/settings')
  return client
}

const oidcForm = (fields: Record<string, string> = {}) => ({
  oidcEnabled: '1',
  oidcIssuer: sso.issuer,
  oidcClientId: sso.clientId,
  oidcClientSecret: sso.clientSecret,
  oidcScopes: '',
  oidcLabel: 'Panel SSO',
  oidcLinkByEmail: '0',
  ...fields,
})

/** Start → provider → callback (as sso.spec.ts): the gateway's answer to the callback. */
async function viaProvider(client: PageClient, start: string) {
  const begun = start.startsWith('POST ') ? await client.post(start.slice(5), {}) : await client.get(start)
  if (begun.status !== 302 || !begun.location?.startsWith(`http://127.0.0.1:${sso.port}/`)) {
    throw new Error(`expected a redirect to the provider, got ${begun.status} ${begun.location}`)
  }
  const atProvider = await fetch(begun.location, { redirect: 'manual' })
  const back = new URL(atProvider.headers.get('location')!)
  return client.get(back.pathname + back.search)
}

/**
 * The flash of the settings page after a POST. A refusal bound to a field is
 * said beside it (the top then says only that the form was not saved): that
 * message is the text.
 */
async function flashOf(client: PageClient) {
  const page = await client.get('/admin/settings')
  const match = /<div class="flash flash--(success|error)"[^>]*>([^<]*)<\/div>/.exec(page.body)
  const beside = /<small class="field-error" id="[^"]+">([^<]*)<\/small>/.exec(page.body)
  const top = match ? htmlText(match[2]).trim() : null
  const text = top === 'The form could not be saved. Please check the errors below.' && beside ? htmlText(beside[1]).trim() : top
  return { page, kind: match?.[1] ?? null, text }
}

async function until(check: () => Promise<boolean>, ms = 5_000) {
  const end = Date.now() + ms
  while (Date.now() < end) {
    if (await check()) return true
    await new Promise((r) => setTimeout(r, 50))
  }
  return false
}

test.group('Single sign-on set from the panel', (group) => {
  group.setup(async () => {
    sso = await new MockSso().start()
    env.set('GITHUB_OAUTH_BASE_URL', sso.githubOauthBase)
    env.set('GITHUB_API_BASE_URL', sso.githubApiBase)
    return async () => {
      env.set('GITHUB_OAUTH_BASE_URL', '' as any)
      env.set('GITHUB_API_BASE_URL', '' as any)
      await resetDatabase()
      await sso.stop()
    }
  })
  group.each.setup(async () => {
    envOff()
    await resetDatabase()
    await setRegistrationOpen(true)
    await clearLoginThrottles('127.0.0.1')
    sso.reset()
    forgetOidcCaches()
  })

  test('OIDC and GitHub set in the panel sign people in end to end, without a restart and with no OIDC_* / GITHUB_CLIENT_* set', async ({ assert }) => {
    const panel = await admin()
    assert.notInclude((await new PageClient().get('/login')).body, 'data-sso')

    const saved = await panel.post('/admin/settings/sso/oidc', oidcForm())
    assert.equal(saved.location, '/admin/settings#sign-in')
    assert.equal((await flashOf(panel)).text, 'OpenID Connect sign-in saved: on.')
    const login = await new PageClient().get('/login')
    assert.include(login.body, 'data-sso-provider="oidc"')
    assert.include(login.body, 'Continue with Panel SSO')
    assert.notInclude(login.body, 'data-sso-provider="github"')

    // The token request carries the saved secret (the mock refuses another one).
    const person = new PageClient()
    assert.equal((await viaProvider(person, '/auth/oidc')).location, '/dashboard')
    assert.equal(sso.authorizeRequests[0].get('scope'), 'openid email profile')
    assert.equal(sso.authorizeRequests[0].get('redirect_uri'), `${baseUrl()}/auth/oidc/callback`)
    const user = await db.from('users').where('email', 'person@example.com').firstOrFail()
    assert.isNull(user.password)

    // An empty secret field keeps the saved one: a second sign-in still works.
    await panel.get('/admin/settings')
    await panel.post('/admin/settings/sso/oidc', oidcForm({ oidcClientSecret: '', oidcScopes: 'openid email' }))
    assert.equal((await viaProvider(new PageClient(), '/auth/oidc')).location, '/dashboard')
    assert.equal(sso.authorizeRequests[1].get('scope'), 'openid email')

    // GitHub.
    await panel.get('/admin/settings')
    await panel.post('/admin/settings/sso/github', { githubEnabled: '1', githubClientId: sso.githubClientId, githubClientSecret: sso.githubClientSecret })
    assert.equal((await flashOf(panel)).text, 'GitHub sign-in saved: on.')
    sso.knobs.person = { sub: 'octo', email: 'octo@example.com', emailVerified: true }
    assert.equal((await viaProvider(new PageClient(), '/auth/github')).location, '/dashboard')
    assert.deepInclude(await db.from('user_identities').where('provider', 'github').firstOrFail(), { subject: '4242' })

    // "Remove the saved secret" with the switch on: GitHub cannot work without one, refused; off, accepted.
    await panel.get('/admin/settings')
    await panel.post('/admin/settings/sso/github', { githubEnabled: '1', githubClientId: sso.githubClientId, githubClientSecret: '', githubClearSecret: '1' })
    assert.equal((await flashOf(panel)).text, "To switch GitHub on, give the OAuth app's client ID and secret")
    await panel.post('/admin/settings/sso/github', { githubEnabled: '0', githubClientId: sso.githubClientId, githubClientSecret: '', githubClearSecret: '1' })
    const row = await db.from('app_settings').where('key', 'sso').firstOrFail()
    assert.deepEqual(row.value.github, { enabled: false, clientId: sso.githubClientId, secretEncrypted: null })
    assert.notInclude((await new PageClient().get('/login')).body, 'data-sso-provider="github"')
    assert.equal((await new PageClient().get('/auth/github')).location, '/login')

    // Switched off: the OIDC button goes too.
    await panel.get('/admin/settings')
    await panel.post('/admin/settings/sso/oidc', oidcForm({ oidcEnabled: '0', oidcClientSecret: '' }))
    assert.notInclude((await new PageClient().get('/login')).body, 'data-sso')
    assert.lengthOf(await db.from('audit_log').where('action', 'settings.sso'), 5)
  })

  test('the environment wins over the panel, per provider; the page shows its values read-only', async ({ assert }) => {
    const panel = await admin()
    await panel.post('/admin/settings/sso/oidc', oidcForm({ oidcClientSecret: 'wrong-secret' }))
    env.set('OIDC_ISSUER', sso.issuer)
    env.set('OIDC_CLIENT_ID', sso.clientId)
    env.set('OIDC_CLIENT_SECRET', sso.clientSecret)
    env.set('OIDC_BUTTON_LABEL', 'Env SSO')
    const login = await new PageClient().get('/login')
    assert.include(login.body, 'Continue with Env SSO')
    assert.notInclude(login.body, 'Panel SSO')
    // The environment's secret is the one sent (the panel's is wrong).
    assert.equal((await viaProvider(new PageClient(), '/auth/oidc')).location, '/dashboard')

    const page = (await panel.get('/admin/settings')).body
    assert.include(page, 'data-sso-source="oidc-env"')
    assert.include(page, `<code>${sso.issuer}</code>`)
    assert.notInclude(page, 'data-sso-form="oidc"')
    assert.include(page, 'data-sso-form="github"', 'GitHub is not in the environment: its form stays')

    // An environment that names the provider incompletely still wins: off, and the page says why.
    env.set('OIDC_ISSUER', '' as any)
    assert.notInclude((await new PageClient().get('/login')).body, 'data-sso-provider="oidc"')
    assert.include((await panel.get('/admin/settings')).body, 'incomplete: OIDC_ISSUER and OIDC_CLIENT_ID are both needed')

    // The panel's is used again once the environment names nothing.
    envOff()
    assert.include((await new PageClient().get('/login')).body, 'Continue with Panel SSO')
  })

  test('a secret saved in the panel is in no page, audit row or answer (nor its ciphertext)', async ({ assert }) => {
    const panel = await admin()
    const oidcSecret = 'oidc-SECRET-0123456789'
    const githubSecret = 'gh-SECRET-9876543210'
    await panel.post('/admin/settings/sso/oidc', oidcForm({ oidcClientSecret: oidcSecret, oidcEnabled: '0' }))
    await panel.post('/admin/settings/sso/github', { githubEnabled: '1', githubClientId: 'id-1', githubClientSecret: githubSecret })
    const row = await db.from('app_settings').where('key', 'sso').firstOrFail()
    assert.notInclude(JSON.stringify(row.value), oidcSecret)
    assert.equal(encryption.decrypt(row.value.oidc.secretEncrypted), oidcSecret)
    const ciphertexts = [row.value.oidc.secretEncrypted, row.value.github.secretEncrypted]

    // A refused save must not echo the typed secret either (old input is not flashed for it).
    await panel.post('/admin/settings/sso/oidc', oidcForm({ oidcIssuer: 'javascript:alert(1)', oidcClientSecret: 'typed-SECRET-555' }))

    const bodies = [
      (await panel.get('/admin/settings')).body,
      (await panel.get('/admin/audit')).body,
      (await new PageClient().get('/login')).body,
      JSON.stringify(await db.from('audit_log').select('summary', 'before', 'after')),
    ]
    for (const body of bodies) {
      for (const secret of [oidcSecret, githubSecret, 'typed-SECRET-555', ...ciphertexts]) assert.notInclude(body, secret)
    }
    assert.include(bodies[0], 'Set. Empty keeps it.')
    const audit = await db.from('audit_log').where('action', 'settings.sso').orderBy('id', 'desc').firstOrFail()
    assert.deepEqual(audit.after, { enabled: true, clientId: 'id-1', authStored: true })
    // The session cookie does not carry it (flashed old input) either.
    assert.notInclude(decodeURIComponent([...panel.cookies.values()].join(';')), 'typed-SECRET-555')
  })

  test('another instance\'s change reaches this one without a restart (NOTIFY app_settings:sso)', async ({ assert }) => {
    assert.notInclude((await new PageClient().get('/login')).body, 'data-sso')
    // Written as another instance's save would be: no call into this process's copy.
    const value = {
      oidc: { enabled: true, issuer: sso.issuer, clientId: sso.clientId, secretEncrypted: encryption.encrypt(sso.clientSecret), scopes: '', label: 'Elsewhere SSO', linkByEmail: false },
      github: null,
    }
    await db.rawQuery(`INSERT INTO app_settings (key, value) VALUES ('sso', ?::jsonb) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`, [JSON.stringify(value)])
    assert.isTrue(await until(async () => (await new PageClient().get('/login')).body.includes('Continue with Elsewhere SSO')))
    assert.equal((await viaProvider(new PageClient(), '/auth/oidc')).location, '/dashboard')
    await db.rawQuery(`UPDATE app_settings SET value = jsonb_set(value, '{oidc,enabled}', 'false') WHERE key = 'sso'`)
    assert.isTrue(await until(async () => !(await new PageClient().get('/login')).body.includes('data-sso')))
  })

  test('the two providers saved at once before any was saved: neither is lost', async ({ assert }) => {
    // No sign-in row yet: both saves used to read nothing under their lock, and the later upsert dropped the other's provider.
    for (let round = 0; round < 5; round++) {
      await db.from('app_settings').where('key', SSO_SETTING).delete()
      await Promise.all([
        setOidcSettings({ enabled: true, issuer: sso.issuer, clientId: `oidc-${round}`, clientSecret: 's1', clearSecret: false, scopes: '', label: '', linkByEmail: false }, cliActor()),
        setGithubSettings({ enabled: true, clientId: `gh-${round}`, clientSecret: 's2', clearSecret: false }, cliActor()),
      ])
      const stored = await storedSso()
      assert.equal(stored.oidc?.clientId, `oidc-${round}`, `round ${round}`)
      assert.equal(stored.github?.clientId, `gh-${round}`, `round ${round}`)
    }
  })

  test('hostile input is refused with a message, nothing saved, no 500', async ({ assert }) => {
    const panel = await admin()
    const big = 'a'.repeat(10 * 1024)
    const cases: Array<[string, Record<string, string>, string]> = [
      ['javascript: issuer', { oidcIssuer: 'javascript:alert(1)//' }, 'Issuer: an https:// address'],
      ['data: issuer', { oidcIssuer: 'data:text/html,x' }, 'Issuer: an https:// address'],
      ['NUL in the issuer', { oidcIssuer: `${sso.issuer}\u0000x` }, 'Issuer: no spaces or control characters'],
      ['CR/LF in the issuer', { oidcIssuer: `${sso.issuer}\r\nX-Evil: 1` }, 'Issuer: no spaces or control characters'],
      ['credentials in the issuer', { oidcIssuer: 'https://user:pw@idp.example.com' }, 'Issuer: no user name, password, ? or # in it'],
      ['a query in the issuer', { oidcIssuer: 'https://idp.example.com/?x=1' }, 'Issuer: no user name, password, ? or # in it'],
      ['10 KB issuer', { oidcIssuer: `https://${big}.example.com` }, 'Issuer: 300 characters at most'],
      ['10 KB client id', { oidcClientId: big }, 'Client ID: 256 characters at most, no spaces or control characters'],
      ['CR/LF in the client id', { oidcClientId: 'id\r\nx' }, 'Client ID: 256 characters at most, no spaces or control characters'],
      ['10 KB secret', { oidcClientSecret: big }, 'Client secret: 512 characters at most, no control characters'],
      ['NUL in the secret', { oidcClientSecret: 'a\u0000b' }, 'Client secret: 512 characters at most, no control characters'],
      ['10 KB label', { oidcLabel: big }, 'Button label: 40 characters at most, no control characters'],
      ['NUL in the label', { oidcLabel: 'a\u0000b' }, 'Button label: 40 characters at most, no control characters'],
      ['a quote in the scopes', { oidcScopes: 'openid "email"' }, 'Scopes: up to 20 names separated by spaces (letters, digits and punctuation, no quotes or backslashes)'],
      ['10 KB scopes', { oidcScopes: `openid ${big}` }, 'Scopes: up to 20 names separated by spaces (letters, digits and punctuation, no quotes or backslashes)'],
      ['on without an issuer', { oidcIssuer: '' }, 'To switch OpenID Connect on, give the issuer and the client ID'],
    ]
    for (const [name, fields, message] of cases) {
      await panel.get('/admin/settings')
      const answer = await panel.post('/admin/settings/sso/oidc', oidcForm(fields))
      assert.equal(answer.status, 302, name)
      const { kind, text } = await flashOf(panel)
      assert.equal(kind, 'error', name)
      assert.equal(text, message, name)
      assert.isNull(await db.from('app_settings').where('key', 'sso').first(), name)
    }
    // A label with markup is text: escaped on the login page.
    await panel.get('/admin/settings')
    await panel.post('/admin/settings/sso/oidc', oidcForm({ oidcLabel: '<img src=x onerror=alert(1)>' }))
    const login = (await new PageClient().get('/login')).body
    assert.notInclude(login, '<img src=x')
    assert.include(login, '&lt;img src=x onerror=alert(1)&gt;')
    // GitHub's form too.
    await panel.get('/admin/settings')
    await panel.post('/admin/settings/sso/github', { githubEnabled: '1', githubClientId: 'x\u0000', githubClientSecret: 's' })
    assert.equal((await flashOf(panel)).text, 'Client ID: 256 characters at most, no spaces or control characters')

    // http:// issuers: allowed outside production (a local provider), refused in production.
    assert.equal(issuerAddress('http://127.0.0.1:8080/realms/x/', false), 'http://127.0.0.1:8080/realms/x')
    assert.throws(() => issuerAddress('http://idp.example.com', true), 'Issuer: https:// only')
    assert.equal(issuerAddress('https://idp.example.com/', true), 'https://idp.example.com')
  })

  test('Test discovery says what the issuer published, or why not; the callback URLs are shown', async ({ assert }) => {
    const panel = await admin()
    await panel.post('/admin/settings/sso/oidc/discovery', oidcForm({ oidcEnabled: '0' }))
    let flash = await flashOf(panel)
    assert.equal(flash.kind, 'success')
    assert.include(flash.text!, `Discovery at ${sso.issuer} works: authorization ${sso.issuer}/authorize, token ${sso.issuer}/token, keys ${sso.issuer}/jwks, userinfo ${sso.issuer}/userinfo`)
    assert.isNull(await db.from('app_settings').where('key', 'sso').first(), 'nothing saved')

    sso.knobs.discoveryDown = true
    await panel.post('/admin/settings/sso/oidc/discovery', oidcForm())
    flash = await flashOf(panel)
    assert.equal(flash.kind, 'error')
    assert.include(flash.text!, 'HTTP 503')
    sso.knobs.discoveryDown = false

    // Nothing listens there: a refusal, within the bounds, not a 500.
    await panel.post('/admin/settings/sso/oidc/discovery', oidcForm({ oidcIssuer: 'http://127.0.0.1:9/oidc' }))
    flash = await flashOf(panel)
    assert.equal(flash.kind, 'error')
    assert.include(flash.text!, 'Discovery at http://127.0.0.1:9/oidc failed')
    // The issuer at another address than the document says.
    await panel.post('/admin/settings/sso/oidc/discovery', oidcForm({ oidcIssuer: `${sso.issuer}/` }))
    assert.equal((await flashOf(panel)).kind, 'success', 'a trailing slash is the same issuer')
    await panel.post('/admin/settings/sso/oidc/discovery', oidcForm({ oidcIssuer: 'javascript:alert(1)' }))
    assert.equal((await flashOf(panel)).text, 'Issuer: an https:// address')

    const page = (await panel.get('/admin/settings')).body
    assert.include(page, `<code data-sso-callback="oidc">${baseUrl()}/auth/oidc/callback</code>`)
    assert.include(page, `<code data-sso-callback="github">${baseUrl()}/auth/github/callback</code>`)
    assert.include(page, 'data-sso-callback-warning')
    // With the site address of Settings > E-mail, the callback (shown and sent) starts with it.
    await db.table('app_settings').insert({ key: 'mail_options', value: JSON.stringify({ productName: '', verifySignups: false, siteUrl: 'https://ai.example.com' }) })
    const withSite = (await panel.get('/admin/settings')).body
    assert.include(withSite, '<code data-sso-callback="oidc">https://ai.example.com/auth/oidc/callback</code>')
    assert.notInclude(withSite, 'data-sso-callback-warning')
    await db.from('app_settings').where('key', 'mail_options').delete()
  })
})

test.group('Security page: the first password of an account made by single sign-on', (group) => {
  group.setup(async () => {
    sso = await new MockSso().start()
    return async () => {
      await resetDatabase()
      await sso.stop()
    }
  })
  group.each.setup(async () => {
    envOff()
    await resetDatabase()
    await setRegistrationOpen(true)
    await clearLoginThrottles('127.0.0.1')
    sso.reset()
    forgetOidcCaches()
    env.set('OIDC_ISSUER', sso.issuer)
    env.set('OIDC_CLIENT_ID', sso.clientId)
    env.set('OIDC_CLIENT_SECRET', sso.clientSecret)
    return () => envOff()
  })

  test('just signed in: sets a password, then signs in with it and can unlink the last identity', async ({ assert }) => {
    const client = new PageClient()
    assert.equal((await viaProvider(client, '/auth/oidc')).location, '/dashboard')
    const user = await db.from('users').where('email', 'person@example.com').firstOrFail()
    await clearFormThrottles('127.0.0.1', [user.id])
    let page = await client.get('/dashboard/security')
    assert.include(page.body, 'data-set-password')
    assert.notInclude(page.body, 'name="code"')

    // Confirmation must match (the validator's refusal, nothing set).
    await client.post('/dashboard/password/set', { password: 'new-password-1', password_confirmation: 'other' })
    assert.isNull((await db.from('users').where('id', user.id).firstOrFail()).password)

    await client.get('/dashboard/security')
    const done = await client.post('/dashboard/password/set', { password: 'new-password-1', password_confirmation: 'new-password-1' })
    assert.equal(done.location, '/dashboard/security#password')
    page = await client.get('/dashboard/security')
    assert.include(page.body, 'Your password is set')
    assert.include(page.body, 'name="current_password"', 'now a change form')
    assert.notInclude(page.body, 'data-last-way-in')
    assert.lengthOf(await db.from('audit_log').where('action', 'user.password_set'), 1)
    // This session stays signed in.
    assert.equal((await client.get('/dashboard')).status, 200)

    // Setting it again is refused: a change asks for the current one.
    const again = await client.post('/dashboard/password/set', { password: 'another-pass-2', password_confirmation: 'another-pass-2' })
    assert.equal(again.location, '/dashboard/security#password')
    assert.include((await client.get('/dashboard/security')).body, 'This account already has a password')

    // The password signs in; the last identity can go.
    const byPassword = new PageClient()
    await byPassword.login('person@example.com', 'new-password-1')
    assert.equal((await byPassword.get('/dashboard')).status, 200)
    const identity = await db.from('user_identities').where('user_id', user.id).firstOrFail()
    await client.get('/dashboard/security')
    await client.post(`/dashboard/security/identities/${identity.id}/unlink`, {})
    assert.lengthOf(await db.from('user_identities').where('user_id', user.id), 0)
  })

  test('a sign-in older than 10 minutes is not proof enough (without two-factor sign-in)', async ({ assert }) => {
    const client = new PageClient()
    await viaProvider(client, '/auth/oidc')
    const user = await db.from('users').where('email', 'person@example.com').firstOrFail()
    await clearFormThrottles('127.0.0.1', [user.id])
    await client.get('/dashboard/security')
    const realNow = Date.now
    Date.now = () => realNow() + 11 * 60_000
    let page
    let answer
    try {
      page = await client.get('/dashboard/security')
      answer = await client.post('/dashboard/password/set', { password: 'new-password-1', password_confirmation: 'new-password-1' })
    } finally {
      Date.now = realNow
    }
    assert.include(page.body, 'data-password-stale')
    assert.notInclude(page.body, 'data-set-password')
    assert.equal(answer.status, 200)
    assert.include(htmlText(answer.body), 'needs a sign-in in the last 10 minutes')
    assert.isNull((await db.from('users').where('id', user.id).firstOrFail()).password)
  })

  test('with two-factor sign-in on, the code is the proof: a wrong one is refused, a right one sets it', async ({ assert }) => {
    const { user } = await createUser({ email: 'person@example.com' })
    await db.from('users').where('id', user.id).update({ password: null })
    await db.table('user_identities').insert({ user_id: user.id, provider: 'oidc', subject: 'person-1', email: 'person@example.com' })
    const secret = await startTwoFactor(user.id)
    await enableTwoFactor(user.id, hotp(base32Decode(secret)!, timeStep() - 1), cliActor())
    await clearFormThrottles('127.0.0.1', [user.id])
    const client = new PageClient()
    assert.equal((await viaProvider(client, '/auth/oidc')).location, '/login/two-factor')
    await client.get('/login/two-factor')
    assert.equal((await client.post('/login/two-factor', { code: hotp(base32Decode(secret)!, timeStep()) })).location, '/dashboard')

    const page = await client.get('/dashboard/security')
    assert.include(page.body, 'name="code"')
    await client.post('/dashboard/password/set', { password: 'new-password-1', password_confirmation: 'new-password-1', code: '000000' })
    assert.include((await client.get('/dashboard/security')).body, 'That code is not right')
    assert.isNull((await db.from('users').where('id', user.id).firstOrFail()).password)

    const realNow = Date.now
    const later = realNow() + 11 * 60_000
    Date.now = () => later
    try {
      // Long after the sign-in: the code alone proves it.
      const code = hotp(base32Decode(secret)!, Math.floor(later / 30_000))
      const done = await client.post('/dashboard/password/set', { password: 'new-password-1', password_confirmation: 'new-password-1', code })
      assert.equal(done.location, '/dashboard/security#password')
    } finally {
      Date.now = realNow
    }
    assert.isNotNull((await db.from('users').where('id', user.id).firstOrFail()).password)
  })
})
