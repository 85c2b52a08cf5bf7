import { test } from '@japa/runner'
import { DateTime } from 'luxon'
import db from '@adonisjs/lucid/services/db'
import { addOrganizationMembers, createOrganization, type OrganizationRow } from '#actions/organizations'
import { addTeamMembers, createTeam, setKeyTeam, type TeamRow } from '#actions/teams'
import { toPico } from '#gateway/metering/money'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { gateway, post, refreshCaches, resetDatabase, seedChannel, seedPrice, seedUser, startMock, type SeededUser } from '#tests/helpers'
import { PageClient, htmlText } from '#tests/page_client'

/**
 * The portal's Organizations pages (README "User portal", Organizations):
 * every member sees the organization's budget, limits, models, block, its
 * teams and 30 days of spend; a viewer sees no other member's e-mail; an
 * org_admin adds, re-roles and removes members (never the last org_admin)
 * and creates teams, through the organization and team actions, audited as
 * the portal user. Any organization the user is not in now is 404, for a
 * gateway admin too; a member who is not an org_admin gets 403 on changes.
 */
async function chat(key: string, model: string) {
  const response = await post('/v1/chat/completions', { model, messages: [{ role: 'user', content: 'hi' }] }, { authorization: `Bearer ${key}` })
  await response.text()
  return response.status
}

async function signedIn(user: SeededUser) {
  const client = new PageClient()
  await client.login(user.email)
  return client
}

const navLink = (body: string) => body.includes('href="/dashboard/organizations"')

async function roleOf(orgId: number, userId: number): Promise<string | null> {
  const row = await db.from('organization_members').where('organization_id', orgId).where('user_id', userId).first()
  return row?.role ?? null
}

/** The organization's page after a form's redirect (the flash is read there). */
async function after(client: PageClient, result: { status: number; location: string | null }) {
  if (result.status !== 302 || !result.location) throw new Error(`expected a redirect, got ${result.status}`)
  return client.get(result.location.replace(/#.*$/, ''))
}

test.group('Portal: organizations', (group) => {
  let mock: MockUpstream
  let org: OrganizationRow
  let other: OrganizationRow
  let alpha: TeamRow
  let beta: TeamRow
  let hidden: TeamRow
  let orgAdmin: SeededUser
  let member: SeededUser
  let viewer: SeededUser
  let outsider: SeededUser
  let gatewayAdmin: SeededUser
  let stranger: SeededUser

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'mock', baseUrl: mock.url, models: ['*'] })
    // 12 prompt and 5 completion tokens a call (the mock's usage): $0.022 a call at these prices.
    await seedPrice('org-model', '1000', '2000')
    await seedPrice('org-other', '1000', '2000')
    orgAdmin = await seedUser({ balance: '10' })
    member = await seedUser({ balance: '10' })
    viewer = await seedUser({ balance: '10' })
    outsider = await seedUser({ balance: '10' })
    stranger = await seedUser({ balance: '10' })
    gatewayAdmin = await seedUser({ balance: '10' })
    await db.from('users').where('id', gatewayAdmin.userId).update({ role: 'admin' })
    org = await createOrganization({ alias: 'acme-research', maxBudget: '50', budgetPeriod: 'month', models: ['org-*'], rpm: 900, tpm: 120000 })
    other = await createOrganization({ alias: 'globex-secret' })
    alpha = await createTeam({ alias: 'alpha-squad', maxBudget: '20', budgetPeriod: 'month', organization: org.id })
    beta = await createTeam({ alias: 'beta-squad', organization: org.id })
    hidden = await createTeam({ alias: 'globex-team', organization: other.id })
    await addOrganizationMembers(org.id, [
      { user: orgAdmin.email, role: 'org_admin' },
      { user: member.email, role: 'internal_user' },
      { user: viewer.email, role: 'internal_user_viewer' },
    ])
    await addOrganizationMembers(other.id, [{ user: outsider.email, role: 'org_admin' }])
    await addTeamMembers(alpha.id, [{ user: member.email, role: 'admin' }])
    await setKeyTeam(String(member.keyId), alpha.id)
    await setKeyTeam(String(viewer.keyId), beta.id)
    await setKeyTeam(String(outsider.keyId), hidden.id)
    await refreshCaches()
    return () => mock.stop()
  })

  test('a member sees the organization: budget, limits, models, teams with their spend, 30 days by day and model', async ({ assert }) => {
    // Three calls through alpha (one of them moved to 5 days ago), one through beta, one in the other organization.
    for (let i = 0; i < 3; i++) assert.equal(await chat(member.key, 'org-model'), 200)
    assert.equal(await chat(viewer.key, 'org-other'), 200)
    assert.equal(await chat(outsider.key, 'org-model'), 200)
    await (await gateway()).meter.drain()
    const rows = await db.from('usage_records').where('organization_id', org.id).orderBy('id')
    assert.lengthOf(rows, 4)
    const fiveDaysAgo = DateTime.utc().minus({ days: 5 }).startOf('day').plus({ hours: 12 })
    await db.from('usage_records').where('id', rows[0].id).update({ created_at: fiveDaysAgo.toJSDate() })

    const client = await signedIn(member)
    const list = await client.get('/dashboard/organizations')
    assert.equal(list.status, 200)
    assert.isTrue(navLink(list.body))
    const listText = htmlText(list.body)
    assert.include(listText, 'acme-research')
    assert.notInclude(listText, 'globex-secret')

    const page = await client.get(`/dashboard/organizations/${org.id}`)
    assert.equal(page.status, 200)
    const text = htmlText(page.body)
    assert.include(text, 'acme-research')
    // $0.088 of $50 this month (shown to the cent), as the request path counts it; limits, models.
    assert.include(text, '$0.09 of $50.00 this month (UTC)')
    assert.include(text, '900 RPM')
    assert.include(text, '120,000 TPM')
    assert.include(page.body, '<code>org-*</code>')
    assert.match(page.body, /data-state="active"/)
    // Teams with their budget and their spend over the 30 days.
    assert.include(text, 'alpha-squad')
    assert.include(text, 'beta-squad')
    assert.notInclude(text, 'globex-team')
    assert.match(page.body, new RegExp(`data-team-id="${alpha.id}"[\\s\\S]*?data-team-spent-range>\\$0\\.07<`))
    assert.match(page.body, new RegExp(`data-team-id="${beta.id}"[\\s\\S]*?data-team-spent-range>\\$0\\.02<`))
    // 30 days: the total, by model, and by day in the chart (the day 5 days ago from the rollup, today live).
    assert.include(text, '$0.09 in these days')
    assert.match(page.body, /data-model="org-model"[\s\S]*?>3<[\s\S]*?>51<[\s\S]*?\$0\.07</)
    assert.match(page.body, /data-model="org-other"[\s\S]*?>1<[\s\S]*?>17<[\s\S]*?\$0\.02</)
    const chart = JSON.parse(htmlText(/data-chart="([^"]+)"/.exec(page.body)![1]))
    assert.lengthOf(chart.labels, 30)
    assert.equal(chart.labels[29], DateTime.utc().toISODate())
    assert.equal(chart.series[0].values[24], 0.022)
    assert.equal(chart.series[0].values[29], 0.066)
    assert.equal(chart.series[0].values.reduce((a: number, b: number) => a + b, 0).toFixed(3), '0.088')
    // The day 5 days ago was read from its rollup (org_model), not from usage_records.
    const rolled = await db.from('usage_daily').where('dim', 'org_model').where('day', fiveDaysAgo.toISODate()!)
    assert.deepEqual(rolled.map((r) => [r.key, toPico(r.cost)]), [[`${org.id} org-model`, toPico('0.022')]])
    // Members with their e-mails and roles; no admin forms for a member.
    assert.include(text, orgAdmin.email)
    assert.include(text, viewer.email)
    assert.include(text, 'Organization admin')
    assert.notInclude(page.body, 'data-form="org-member"')
    assert.notInclude(page.body, 'data-form="org-team"')
  })

  test('a viewer sees the spend and the member counts, not the other members\' e-mails', async ({ assert }) => {
    const client = await signedIn(viewer)
    const page = await client.get(`/dashboard/organizations/${org.id}`)
    assert.equal(page.status, 200)
    const text = htmlText(page.body)
    assert.include(text, 'Viewer')
    assert.include(text, 'in these days')
    assert.include(text, 'alpha-squad')
    assert.include(text, '3 members: 1 organization admin(s), 1 member(s), 1 viewer(s).')
    assert.include(text, viewer.email)
    assert.notInclude(text, orgAdmin.email)
    assert.notInclude(text, member.email)
  })

  test('a member who is no org_admin gets 403 on every change, and nothing changes', async ({ assert }) => {
    const client = await signedIn(member)
    await client.get(`/dashboard/organizations/${org.id}`)
    const refusals = [
      await client.post(`/dashboard/organizations/${org.id}/members`, { email: stranger.email, new_role: 'org_admin' }),
      await client.post(`/dashboard/organizations/${org.id}/members/${member.userId}/role`, { role: 'org_admin' }),
      await client.post(`/dashboard/organizations/${org.id}/members/${orgAdmin.userId}/remove`, {}),
      await client.post(`/dashboard/organizations/${org.id}/teams`, { team_name: 'sneaky' }),
    ]
    assert.deepEqual(refusals.map((r) => r.status), [403, 403, 403, 403])
    assert.isNull(await roleOf(org.id, stranger.userId))
    assert.equal(await roleOf(org.id, member.userId), 'internal_user')
    assert.equal(await roleOf(org.id, orgAdmin.userId), 'org_admin')
    assert.isNull(await db.from('teams').where('alias', 'sneaky').first())
  })

  test('another organization, one that does not exist, and a gateway admin in none: 404 on every page and change', async ({ assert }) => {
    for (const [user, orgId] of [[member, other.id], [outsider, org.id], [member, 999999], [gatewayAdmin, org.id]] as const) {
      const client = await signedIn(user)
      await client.get('/dashboard/keys')
      const statuses = [
        (await client.get(`/dashboard/organizations/${orgId}`)).status,
        (await client.post(`/dashboard/organizations/${orgId}/members`, { email: user.email, new_role: 'org_admin' })).status,
        (await client.post(`/dashboard/organizations/${orgId}/members/${user.userId}/role`, { role: 'org_admin' })).status,
        (await client.post(`/dashboard/organizations/${orgId}/members/${user.userId}/remove`, {})).status,
        (await client.post(`/dashboard/organizations/${orgId}/teams`, { team_name: 'sneaky' })).status,
      ]
      assert.deepEqual(statuses, [404, 404, 404, 404, 404], `${user.email} on ${orgId}`)
    }
    assert.isNull(await roleOf(other.id, member.userId))
    assert.isNull(await roleOf(org.id, gatewayAdmin.userId))
    assert.isNull(await db.from('teams').where('alias', 'sneaky').first())
    // The gateway admin is in no organization: no nav entry, an empty list.
    const client = await signedIn(gatewayAdmin)
    const list = await client.get('/dashboard/organizations')
    assert.isFalse(navLink(list.body))
    assert.include(htmlText(list.body), 'You are in no organization.')
    assert.isFalse(navLink((await client.get('/dashboard')).body))
  })

  test('an org_admin adds a member by e-mail with a role (audited as the portal user); refusals beside the field', async ({ assert }) => {
    const client = await signedIn(orgAdmin)
    const page = await client.get(`/dashboard/organizations/${org.id}`)
    assert.include(page.body, 'data-form="org-member"')

    // No account with that e-mail: said beside the e-mail field, the typed address kept.
    let result = await after(client, await client.post(`/dashboard/organizations/${org.id}/members`, { email: 'nobody@test.local', new_role: 'internal_user' }))
    assert.match(result.body, /id="f-email-error">No account has this e-mail/)
    assert.include(result.body, 'value="nobody@test.local"')
    // Already a member: refused (their role changes in the list), nothing changed.
    result = await after(client, await client.post(`/dashboard/organizations/${org.id}/members`, { email: viewer.email.toUpperCase(), new_role: 'org_admin' }))
    assert.match(result.body, /id="f-email-error">[^<]*is already a member/)
    assert.equal(await roleOf(org.id, viewer.userId), 'internal_user_viewer')
    // Not an e-mail, a role that is none: the validator's messages beside the fields.
    result = await after(client, await client.post(`/dashboard/organizations/${org.id}/members`, { email: 'not-an-address', new_role: 'owner' }))
    assert.match(result.body, /id="f-email-error">Enter a valid e-mail address/)
    assert.match(result.body, /id="f-new_role-error">/)

    // Added, case-insensitively by e-mail, with the role chosen; audited with the portal actor.
    result = await after(client, await client.post(`/dashboard/organizations/${org.id}/members`, { email: stranger.email.toUpperCase(), new_role: 'internal_user' }))
    assert.include(htmlText(result.body), `${stranger.email} is in the organization as Member.`)
    assert.equal(await roleOf(org.id, stranger.userId), 'internal_user')
    const audit = await db.from('audit_log').where('action', 'organization.member_add').where('subject_id', org.id).orderBy('id', 'desc').first()
    assert.deepEqual([audit.source, audit.actor, Number(audit.actor_id)], ['portal', orgAdmin.email, orgAdmin.userId])
    // The new member sees it at once.
    const newcomer = await signedIn(stranger)
    assert.equal((await newcomer.get(`/dashboard/organizations/${org.id}`)).status, 200)
  })

  test('the last org_admin is neither demoted nor removed; with another admin both work, and a removed member loses access at once', async ({ assert }) => {
    const admin = await signedIn(orgAdmin)
    await admin.get(`/dashboard/organizations/${org.id}`)
    // Demoting or removing themselves, the only org_admin: refused in their row.
    let result = await after(admin, await admin.post(`/dashboard/organizations/${org.id}/members/${orgAdmin.userId}/role`, { role: 'internal_user' }))
    assert.match(result.body, new RegExp(`id="member-${orgAdmin.userId}-error">The organization needs an admin`))
    result = await after(admin, await admin.post(`/dashboard/organizations/${org.id}/members/${orgAdmin.userId}/remove`, {}))
    assert.match(result.body, new RegExp(`id="member-${orgAdmin.userId}-error">The organization needs an admin`))
    assert.equal(await roleOf(org.id, orgAdmin.userId), 'org_admin')

    // The member signed in now; made an org_admin, they can then demote the first.
    const second = await signedIn(member)
    assert.equal((await second.get(`/dashboard/organizations/${org.id}`)).status, 200)
    result = await after(admin, await admin.post(`/dashboard/organizations/${org.id}/members/${member.userId}/role`, { role: 'org_admin' }))
    assert.include(htmlText(result.body), `${member.email} is now Organization admin.`)
    const audit = await db.from('audit_log').where('action', 'organization.member_update').orderBy('id', 'desc').first()
    assert.deepEqual([audit.source, audit.actor], ['portal', orgAdmin.email])

    // Removed by the other admin: the next request of the removed member's session is a 404, the nav loses the entry.
    const removed = await second.post(`/dashboard/organizations/${org.id}/members/${orgAdmin.userId}/remove`, {})
    assert.equal(removed.status, 302)
    assert.isNull(await roleOf(org.id, orgAdmin.userId))
    assert.equal((await admin.get(`/dashboard/organizations/${org.id}`)).status, 404)
    assert.equal((await admin.post(`/dashboard/organizations/${org.id}/members`, { email: orgAdmin.email, new_role: 'org_admin' })).status, 404)
    assert.isFalse(navLink((await admin.get('/dashboard')).body))
    assert.isNull(await roleOf(org.id, orgAdmin.userId))

    // Back as they were for the next tests.
    await addOrganizationMembers(org.id, [{ user: orgAdmin.email, role: 'org_admin' }, { user: member.email, role: 'internal_user' }])
  })

  test('two org_admins demoting each other at once: one of them stays org_admin', async ({ assert }) => {
    await addOrganizationMembers(org.id, [{ user: member.email, role: 'org_admin' }])
    const [first, second] = await Promise.all([signedIn(orgAdmin), signedIn(member)])
    await Promise.all([first.get(`/dashboard/organizations/${org.id}`), second.get(`/dashboard/organizations/${org.id}`)])
    const results = await Promise.all([
      first.post(`/dashboard/organizations/${org.id}/members/${member.userId}/role`, { role: 'internal_user' }),
      second.post(`/dashboard/organizations/${org.id}/members/${orgAdmin.userId}/role`, { role: 'internal_user' }),
    ])
    // The second one taken found its actor no longer an org_admin (403), or nothing to keep (both admins: one demoted).
    const admins = await db.from('organization_members').where('organization_id', org.id).where('role', 'org_admin')
    assert.lengthOf(admins, 1)
    assert.sameMembers(results.map((r) => r.status), [302, 403])
    await addOrganizationMembers(org.id, [{ user: orgAdmin.email, role: 'org_admin' }, { user: member.email, role: 'internal_user' }])
  })

  test('a burst of 16 changes at once (more than the pool\'s connections) is served in turn, none stalled', async ({ assert }) => {
    const client = await signedIn(orgAdmin)
    await client.get(`/dashboard/organizations/${org.id}`)
    const started = Date.now()
    const results = await Promise.all(
      Array.from({ length: 16 }, (_, i) =>
        client.post(`/dashboard/organizations/${org.id}/members/${member.userId}/role`, { role: i % 2 ? 'internal_user' : 'internal_user_viewer' })
      )
    )
    assert.deepEqual([...new Set(results.map((r) => r.status))], [302])
    assert.isBelow(Date.now() - started, 10_000)
    assert.equal(await db.from('audit_log').where('action', 'organization.member_update').where('created_at', '>=', new Date(started)).count('* as n').then((r) => Number(r[0].n)), 16)
    // The pool is still free: a page answers at once.
    assert.equal((await client.get(`/dashboard/organizations/${org.id}`)).status, 200)
    await addOrganizationMembers(org.id, [{ user: member.email, role: 'internal_user' }])
  }).timeout(90_000)

  test('an org_admin creates a team in the organization within its budget and becomes its admin', async ({ assert }) => {
    const client = await signedIn(orgAdmin)
    const page = await client.get(`/dashboard/organizations/${org.id}`)
    assert.include(page.body, 'data-form="org-team"')
    // Above the organization's $50: refused beside the budget field, nothing made.
    let result = await after(client, await client.post(`/dashboard/organizations/${org.id}/teams`, { team_name: 'gamma-squad', team_budget: '50.000001', team_period: 'month' }))
    assert.match(result.body, /id="f-team_budget-error">At most the organization&#x27;s budget, \$50\./)
    assert.include(result.body, 'value="gamma-squad"')
    // Not an amount; no name.
    result = await after(client, await client.post(`/dashboard/organizations/${org.id}/teams`, { team_name: '', team_budget: '1e3' }))
    assert.match(result.body, /id="f-team_name-error">/)
    assert.match(result.body, /id="f-team_budget-error">Budget must be an amount in USD/)
    assert.isNull(await db.from('teams').where('alias', 'gamma-squad').first())

    result = await after(client, await client.post(`/dashboard/organizations/${org.id}/teams`, { team_name: 'gamma-squad', team_budget: '12.5', team_period: 'week' }))
    assert.include(htmlText(result.body), 'Team gamma-squad created in this organization; you are its admin.')
    const team = await db.from('teams').where('alias', 'gamma-squad').first()
    assert.equal(Number(team.organization_id), org.id)
    assert.equal(toPico(team.max_budget), toPico('12.5'))
    assert.equal(team.budget_period, 'week')
    const membership = await db.from('team_members').where('team_id', team.id)
    assert.deepEqual(membership.map((m) => [Number(m.user_id), m.role]), [[orgAdmin.userId, 'admin']])
    const audits = await db.from('audit_log').whereIn('action', ['team.create', 'team.member_add']).where('subject_id', team.id).orderBy('id')
    assert.deepEqual(audits.map((a) => [a.action, a.source, a.actor]), [['team.create', 'portal', orgAdmin.email], ['team.member_add', 'portal', orgAdmin.email]])
    // Listed in the organization; the creator may put keys in it (the keys form offers it).
    assert.include(htmlText(result.body), 'gamma-squad')
    assert.include((await client.get('/dashboard/keys')).body, 'gamma-squad')
  })

  test('forms without the CSRF token change nothing', async ({ assert }) => {
    const client = await signedIn(orgAdmin)
    await client.get(`/dashboard/organizations/${org.id}`)
    const result = await client.post(`/dashboard/organizations/${org.id}/members`, { email: stranger.email, new_role: 'org_admin' }, { csrf: false })
    assert.notEqual(result.status, 200)
    await client.post(`/dashboard/organizations/${org.id}/members/${member.userId}/remove`, {}, { csrf: false })
    assert.notEqual(await roleOf(org.id, stranger.userId), 'org_admin')
    assert.equal(await roleOf(org.id, member.userId), 'internal_user')
  })

  test('a blocked organization and a spent budget are said on its page; errors in the visitor\'s language', async ({ assert }) => {
    await db.from('organizations').where('id', org.id).update({ blocked_at: new Date() })
    const client = await signedIn(orgAdmin)
    let page = await client.get(`/dashboard/organizations/${org.id}`)
    assert.match(page.body, /data-org-notice="blocked"/)
    assert.match(page.body, /data-state="blocked"/)
    await db.from('organizations').where('id', org.id).update({ blocked_at: null, max_budget: '0.01' })
    page = await client.get(`/dashboard/organizations/${org.id}`)
    assert.match(page.body, /data-org-notice="budget"/)
    await db.from('organizations').where('id', org.id).update({ max_budget: '50' })

    await client.get('/lang/vi')
    await client.get(`/dashboard/organizations/${org.id}`)
    const result = await after(client, await client.post(`/dashboard/organizations/${org.id}/members/${orgAdmin.userId}/remove`, {}))
    assert.include(htmlText(result.body), 'Tổ chức cần một quản trị')
    assert.include(htmlText(result.body), 'Quản trị tổ chức')
  })
})
