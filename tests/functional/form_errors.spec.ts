import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import { createUser } from '#actions/create_user'
import { PanelClient, textOf } from '#tests/panel_client'
import { resetDatabase } from '#tests/helpers'

/**
 * A refused form's field error is said once: beside its field when the page
 * the form goes back to renders that field, at the top of the page when it
 * does not (a form posted from another page, a button): never both, never
 * neither. Both kinds of refusal: a VineJS validator's and an action's
 * (AdminInputError naming a field).
 */
function beside(html: string, field: string) {
  const match = html.match(new RegExp(`id="f-${field}-error">([^<]*)<`))
  return match ? textOf(match[1]).trim() : null
}

/** The error messages at the top of the page (the flash component's). */
function atTop(html: string) {
  return [...html.matchAll(/<div class="flash flash--error" role="alert"[^>]*>([^<]*)<\/div>/g)].map((m) => textOf(m[1]).trim())
}

const SUMMARY = 'The form could not be saved. Please check the errors below.'

test.group('Form errors: beside the field, or at the top when the page has no such field', (group) => {
  let client: PanelClient

  group.setup(async () => {
    await resetDatabase()
    await createUser({ email: 'forms@errors.local', password: 'admin-password', role: 'admin' })
    client = new PanelClient()
    await client.login('forms@errors.local', 'admin-password')
  })

  test("an action's refusal: beside the field on the form's own page, the top only says the form was not saved", async ({ assert }) => {
    await client.get('/admin/teams/new')
    const page = await client.follow(await client.post('/admin/teams', { alias: 'Tampered', organization: '0x10' }))
    assert.equal(beside(page.html, 'organization'), 'No organization "0x10"')
    assert.deepEqual(atTop(page.html), [SUMMARY])
    assert.lengthOf(await db.from('teams'), 0)
  })

  test("an action's refusal from a page without the field: said at the top, once", async ({ assert }) => {
    // The teams list has no Organization field: the message goes back there, at the top.
    await client.get('/admin/teams')
    const page = await client.follow(await client.post('/admin/teams', { alias: 'Tampered', organization: '0x10' }))
    assert.equal(page.status, 200)
    assert.isNull(beside(page.html, 'organization'))
    assert.deepEqual(atTop(page.html), ['No organization "0x10"'])
  })

  test("a validator's refusal: beside the field on the form's page; at the top on a page without it", async ({ assert }) => {
    await client.get('/admin/organizations/new')
    const onForm = await client.follow(await client.post('/admin/organizations', { alias: 'Acme', maxBudget: '1,5' }))
    const message = 'Budget must be an amount in USD such as 5 or 0.50, with at most 6 decimals.'
    assert.equal(beside(onForm.html, 'maxBudget'), message)
    assert.deepEqual(atTop(onForm.html), [SUMMARY])

    await client.get('/admin/organizations')
    const elsewhere = await client.follow(await client.post('/admin/organizations', { alias: 'Acme', maxBudget: '1,5' }))
    assert.isNull(beside(elsewhere.html, 'maxBudget'))
    assert.deepEqual(atTop(elsewhere.html), [message], 'the message itself, not "check the errors below" with none below')
    assert.lengthOf(await db.from('organizations'), 0)
  })

  test('a field a page draws itself (the channel form\'s plan boxes) counts as said beside it', async ({ assert }) => {
    await client.get('/admin/channels/new')
    const page = await client.follow(
      await client.post('/admin/channels', { name: 'c', provider: 'custom', baseUrl: 'http://127.0.0.1:9/v1', models: 'x-*', priority: '0', weight: '1', 'planIds[]': ['424242'] })
    )
    assert.match(page.html, /<small class="field-error">[^<]*no plan with id 424242/)
    assert.deepEqual(atTop(page.html), [SUMMARY])
  })
})
