import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import env from '#start/env'
import { createUser } from '#actions/create_user'
import { setRegistrationOpen } from '#services/app_settings'
import { clearLoginThrottles } from '#services/login_throttle'
import { clearFormThrottles } from '#services/form_throttle'
import { forgetOidcCaches } from '#services/sso/oidc_provider'
import { resetDatabase } from '#tests/helpers'
import { PageClient } from '#tests/page_client'
import { MockSso } from '#tests/fixtures/mock_sso'

/**
 * Hostile input and races on this pass's merges: single sign-on set from
 * the panel, an SSO-only account's first password, the e-mail outbox and the
 * meter's settled reads. Two mock providers play two issuers.
 */
let first: MockSso
let second: MockSso
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

const oidcForm = (provider: MockSso, fields: Record<string, string> = {}) => ({
  oidcEnabled: '1',
  oidcIssuer: provider.issuer,
  oidcClientId: provider.clientId,
  oidcClientSecret: provider.clientSecret,
  oidcScopes: '',
  oidcLabel: 'Company SSO',
  oidcLinkByEmail: '0',
  ...fields,
})

/** /auth/oidc → the provider → the callback: the gateway's answer to the callback. */
async function viaProvider(client: PageClient, provider: MockSso) {
  const begun = await client.get('/auth/oidc')
  if (begun.status !== 302 || !begun.location?.startsWith(`http://127.0.0.1:${provider.port}/`)) {
    throw new Error(`expected a redirect to the provider on ${provider.port}, got ${begun.status} ${begun.location}`)
  }
  const atProvider = await fetch(begun.location, { redirect: 'manual' })
  const back = new URL(atProvider.headers.get('location')!)
  return client.get(back.pathname + back.search)
}

/** Whose account a page client is signed in to (the Security page names its address). */
async function signedInAs(client: PageClient) {
  const page = await client.get('/dashboard/security')
  return page.status === 200 ? page.body : ''
}

test.group('Hostile s29: single sign-on identities and the panel', (group) => {
  group.setup(async () => {
    first = await new MockSso().start()
    second = await new MockSso().start()
    return async () => {
      await resetDatabase()
      await first.stop()
      await second.stop()
    }
  })
  group.each.setup(async () => {
    envOff()
    await resetDatabase()
    await setRegistrationOpen(true)
    await clearLoginThrottles('127.0.0.1')
    first.reset()
    second.reset()
    forgetOidcCaches()
  })

  test('the issuer changed in the panel: the new issuer\'s person with an old subject does not sign in to the old account', async ({ assert }) => {
    const panel = await admin()
    await panel.post('/admin/settings/sso/oidc', oidcForm(first))

    // Under the first issuer, "shared-1" is the victim: an account made by the sign-in.
    first.knobs.person = { sub: 'shared-1', email: 'victim@example.com', emailVerified: true }
    const victim = new PageClient()
    assert.equal((await viaProvider(victim, first)).location, '/dashboard')
    const victimRow = await db.from('users').where('email', 'victim@example.com').firstOrFail()

    // The operator moves to another issuer, where "shared-1" is someone else.
    await panel.get('/admin/settings')
    await panel.post('/admin/settings/sso/oidc', oidcForm(second))
    second.knobs.person = { sub: 'shared-1', email: 'attacker@example.com', emailVerified: true }
    const attacker = new PageClient()
    assert.equal((await viaProvider(attacker, second)).location, '/dashboard')
    const page = await signedInAs(attacker)
    assert.include(page, 'attacker@example.com')
    assert.notInclude(page, 'victim@example.com')
    const attackerRow = await db.from('users').where('email', 'attacker@example.com').firstOrFail()
    assert.notEqual(attackerRow.id, victimRow.id)
    const rows = await db.from('user_identities').where('subject', 'shared-1').orderBy('id')
    assert.deepEqual(
      rows.map((row) => [Number(row.user_id), row.issuer]),
      [
        [Number(victimRow.id), first.issuer],
        [Number(attackerRow.id), second.issuer],
      ]
    )

    // Back to the first issuer: its "shared-1" is the victim again.
    await panel.get('/admin/settings')
    await panel.post('/admin/settings/sso/oidc', oidcForm(first))
    const again = new PageClient()
    assert.equal((await viaProvider(again, first)).location, '/dashboard')
    assert.include(await signedInAs(again), 'victim@example.com')
  })

  test('an identity linked before issuers were recorded is taken by the first issuer it signs in through, and only by it', async ({ assert }) => {
    const panel = await admin()
    await panel.post('/admin/settings/sso/oidc', oidcForm(first))
    const { user } = await createUser({ email: 'old@example.com' })
    await db.table('user_identities').insert({ user_id: user.id, provider: 'oidc', subject: 'old-1', email: 'old@example.com' })

    first.knobs.person = { sub: 'old-1', email: 'old@example.com', emailVerified: true }
    const owner = new PageClient()
    assert.equal((await viaProvider(owner, first)).location, '/dashboard')
    assert.include(await signedInAs(owner), 'old@example.com')
    assert.equal((await db.from('user_identities').where('user_id', user.id).firstOrFail()).issuer, first.issuer)

    await panel.get('/admin/settings')
    await panel.post('/admin/settings/sso/oidc', oidcForm(second))
    second.knobs.person = { sub: 'old-1', email: 'other@example.com', emailVerified: true }
    const other = new PageClient()
    await viaProvider(other, second)
    assert.notInclude(await signedInAs(other), 'old@example.com')
  })
})
