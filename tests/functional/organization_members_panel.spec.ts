import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import { createUser } from '#actions/create_user'
import { createOrganization } from '#actions/organizations'
import { PanelClient, textOf } from '#tests/panel_client'
import { resetDatabase } from '#tests/helpers'

/**
 * An organization's members on its page in the panel: listed (user, role,
 * added), added by e-mail, a role changed, one removed, through the actions
 * LiteLLM's /organization/member_* and the management API call, audited as
 * the admin; a refusal said beside its field (the add form's, or the row's).
 */
function beside(html: string, id: string) {
  const match = html.match(new RegExp(`id="${id}-error">([^<]*)<`))
  return match ? textOf(match[1]).trim() : null
}

function atTop(html: string) {
  return [...html.matchAll(/<div class="flash flash--error" role="alert"[^>]*>([^<]*)<\/div>/g)].map((m) => textOf(m[1]).trim())
}

function memberRows(html: string) {
  return [...html.matchAll(/<tr data-member="(\d+)">([\s\S]*?)<\/tr>/g)].map((m) => ({
    userId: Number(m[1]),
    email: textOf(m[2].match(/<a href="\/admin\/users\/\d+">([^<]*)<\/a>/)![1]).trim(),
    role: m[2].match(/<option value="(\w+)"\s+selected/)?.[1] ?? null,
  }))
}

const SUMMARY = 'The form could not be saved. Please check the errors below.'

test.group('Organization members in the admin panel', (group) => {
  let client: PanelClient
  let orgId = 0
  let alice = 0
  let bob = 0
  const page = () => `/admin/organizations/${orgId}/edit`
  const members = () => db.from('organization_members').where('organization_id', orgId).orderBy('user_id')

  group.setup(async () => {
    await resetDatabase()
    await createUser({ email: 'admin@members.local', password: 'admin-password', role: 'admin' })
    alice = (await createUser({ email: 'alice@members.local', password: 'user-password', role: 'user' })).user.id
    bob = (await createUser({ email: 'bob@members.local', password: 'user-password', role: 'user' })).user.id
    orgId = (await createOrganization({ alias: 'Acme' })).id
    client = new PanelClient()
    await client.login('admin@members.local', 'admin-password')
  })

  test('add by e-mail with a role, change the role, remove: listed on the page, audited as the admin like the API path', async ({ assert }) => {
    const empty = await client.get(page())
    assert.include(textOf(empty.html), 'No members yet.')

    const added = await client.post(`/admin/organizations/${orgId}/members`, { user: ' alice@members.local ', role: 'org_admin' })
    assert.equal(added.location, `${page()}#members`)
    const listed = await client.follow(added)
    assert.include(textOf(listed.html), 'alice@members.local is in organization Acme as org_admin.')
    assert.deepEqual(memberRows(listed.html), [{ userId: alice, email: 'alice@members.local', role: 'org_admin' }])
    assert.match(listed.html, /<td data-label="Added" class="nowrap">\d{4}-\d\d-\d\d \d\d:\d\d/)
    await client.follow(await client.post(`/admin/organizations/${orgId}/members`, { user: 'bob@members.local', role: 'internal_user_viewer' }))
    assert.deepEqual((await members()).map((m) => [Number(m.user_id), m.role]), [[alice, 'org_admin'], [bob, 'internal_user_viewer']])

    const changed = await client.follow(await client.post(`/admin/organizations/${orgId}/members/role`, { user: String(bob), role: 'internal_user' }))
    assert.include(textOf(changed.html), 'bob@members.local is now internal_user in organization Acme.')
    assert.deepEqual(memberRows(changed.html).map((m) => m.role), ['org_admin', 'internal_user'])

    const removed = await client.follow(await client.post(`/admin/organizations/${orgId}/members/remove`, { user: String(alice) }))
    assert.include(textOf(removed.html), 'alice@members.local left organization Acme.')
    assert.deepEqual(memberRows(removed.html).map((m) => m.userId), [bob])
    assert.lengthOf(await db.from('users').where('id', alice), 1, 'the user stays')

    const audit = await db.from('audit_log').where('subject_type', 'organization').where('action', 'like', 'organization.member%').orderBy('id')
    assert.deepEqual(audit.map((a) => a.action), ['organization.member_add', 'organization.member_add', 'organization.member_update', 'organization.member_delete'])
    assert.isTrue(audit.every((a) => a.source === 'panel' && a.actor === 'admin@members.local'))
    assert.deepEqual(audit.map((a) => a.summary), [
      'organization Acme: alice@members.local (org_admin) added',
      'organization Acme: bob@members.local (internal_user_viewer) added',
      'organization Acme: bob@members.local is now internal_user',
      'organization Acme: alice@members.local removed',
    ])
  })

  test("the add form's refusals are said beside its fields, with what was typed; nothing added", async ({ assert }) => {
    const before = await members()
    const noUser = await client.follow(await client.post(`/admin/organizations/${orgId}/members`, { user: '', role: 'internal_user' }))
    assert.equal(beside(noUser.html, 'f-user'), 'User is required.')
    assert.deepEqual(atTop(noUser.html), [SUMMARY])

    const unknown = await client.follow(await client.post(`/admin/organizations/${orgId}/members`, { user: 'nobody@members.local', role: 'org_admin' }))
    assert.equal(beside(unknown.html, 'f-user'), 'No user "nobody@members.local"')
    assert.include(unknown.html, 'value="nobody@members.local"', 'the e-mail as typed')
    assert.match(unknown.html, /<option value="org_admin"\s+selected>Organization admin/, 'the role as chosen')
    assert.deepEqual(atTop(unknown.html), [SUMMARY])

    const badRole = await client.follow(await client.post(`/admin/organizations/${orgId}/members`, { user: 'alice@members.local', role: 'proxy_admin' }))
    assert.equal(beside(badRole.html, 'f-role'), 'Role must be org_admin, internal_user or internal_user_viewer.')
    assert.deepEqual(await members(), before)
    assert.equal(await db.from('audit_log').where('action', 'organization.member_add').where('summary', 'like', '%nobody%').first(), null)
  })

  test("a row's refusal is said in that row; a member gone meanwhile is said at the top; nothing changed", async ({ assert }) => {
    const before = await members()
    const badRole = await client.follow(await client.post(`/admin/organizations/${orgId}/members/role`, { user: String(bob), role: 'owner' }))
    assert.equal(beside(badRole.html, `member-${bob}`), 'Role must be org_admin, internal_user or internal_user_viewer.')
    assert.match(badRole.html, new RegExp(`aria-invalid="true" aria-describedby="member-${bob}-error"`))
    assert.isNull(beside(badRole.html, 'f-role'), 'not beside the add form')
    assert.notInclude(badRole.html, 'value="owner"', "the row's posted role does not refill the add form")
    assert.deepEqual(atTop(badRole.html), [SUMMARY])

    const notMember = await client.follow(await client.post(`/admin/organizations/${orgId}/members/remove`, { user: String(alice) }))
    assert.deepEqual(atTop(notMember.html), ['alice@members.local is not a member of organization Acme'])
    const tampered = await client.follow(await client.post(`/admin/organizations/${orgId}/members/role`, { user: '1e3', role: 'org_admin' }))
    assert.deepEqual(atTop(tampered.html), ['User is required.'], 'a user id that is no id: said at the top (no such row)')
    assert.deepEqual(await members(), before)

    const gone = await client.post('/admin/organizations/999999/members', { user: 'bob@members.local' })
    assert.equal(gone.location, '/admin/organizations/999999/edit#members')
    assert.equal((await client.follow(gone)).status, 404)
  })
})
