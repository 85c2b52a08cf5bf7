import { test } from '@japa/runner'
import { DateTime } from 'luxon'
import { createUser } from '#actions/create_user'
import { gateway, meterEvent, resetDatabase, seedUser, type SeededUser } from '#tests/helpers'
import { PanelClient, textOf } from '#tests/panel_client'

/**
 * The Usage pages' date range, in the admin panel and the portal: a `from`
 * later than `to` (or, in the panel, more than a year before it) is said
 * beside the date fields with the dates as typed, a 422 like the pages'
 * other refused filters; the range is not swapped or clamped into another
 * one, and nothing is listed for it. The management API refuses the same
 * ranges with a 400 (usage_date_params.spec.ts), in the same words.
 */

const today = () => DateTime.utc().toISODate()!

/** The value of the input with this id */
function valueOf(html: string, id: string) {
  return html.match(new RegExp(`<input id="${id}"[^>]*value="([^"]*)"`))?.[1]
}

test.group('Usage pages: a date range refused beside its fields', (group) => {
  const admin = new PanelClient()
  const portal = new PanelClient()
  let user: SeededUser

  group.setup(async () => {
    await resetDatabase()
    await createUser({ email: 'range-admin@test.local', password: 'admin-password', role: 'admin' })
    user = await seedUser({ balance: '5' })
    const gw = await gateway()
    gw.meter.record({ ...meterEvent(user.userId), apiKeyId: user.keyId })
    await gw.meter.drain()
    await admin.login('range-admin@test.local', 'admin-password')
    await portal.login(user.email, 'password123')
  })

  test('admin: from later than to is a 422 with the message beside From, the dates as typed, nothing listed', async ({ assert }) => {
    const page = await admin.get('/admin/usage?from=2026-03-02&to=2026-03-01&model=m1')
    assert.equal(page.status, 422)
    const said = page.html.match(/<small class="field-error" id="u-from-error" data-range-error="from">([^<]*)<\/small>/)?.[1]
    assert.equal(said, 'From must not be later than to (2026-03-01): a range runs from an earlier or the same day to a later one')
    assert.match(page.html, /<input id="u-from"[^>]*aria-invalid="true"[^>]*aria-describedby="u-from-error"/)
    // Before: swapped into 2026-03-01..2026-03-02 and answered as that range.
    assert.equal(valueOf(page.html, 'u-from'), '2026-03-02')
    assert.equal(valueOf(page.html, 'u-to'), '2026-03-01')
    assert.equal(valueOf(page.html, 'u-model'), 'm1', 'the other filters are kept too')
    assert.notInclude(page.html, 'Export CSV')
    assert.notInclude(textOf(page.html), 'Input tokens')
    assert.include(textOf(page.html), 'No totals or requests shown: fix the dates above')
  })

  test('admin: more than a year is refused as typed (not clamped); a good range is answered; the CSV link of a refused range goes to the page', async ({ assert }) => {
    const long = await admin.get('/admin/usage?from=2024-01-01&to=2025-01-02')
    assert.equal(long.status, 422)
    assert.include(textOf(long.html), 'From must be at most 366 days before to (2025-01-02)')
    assert.equal(valueOf(long.html, 'u-from'), '2024-01-01', 'before: clamped to 2024-01-02')

    const good = await admin.get(`/admin/usage?from=${today()}&to=${today()}`)
    assert.equal(good.status, 200)
    assert.notInclude(good.html, 'data-range-error')
    assert.include(good.html, `href="/admin/usage/export.csv?from=${today()}&amp;to=${today()}"`)
    assert.match(textOf(good.html), /Requests 1 /)

    const exported = await admin.get('/admin/usage/export.csv?from=2026-03-02&to=2026-03-01')
    assert.equal(exported.status, 302)
    assert.equal(exported.location, '/admin/usage?from=2026-03-02&to=2026-03-01')
  })

  test('portal: from later than to is a 422 with the message beside From, the dates as typed, no list; the CSV says why', async ({ assert }) => {
    const page = await portal.get('/dashboard/usage?from=2026-03-02&to=2026-03-01')
    assert.equal(page.status, 422)
    const said = page.html.match(/<small class="field-error" id="f-from-error" data-range-error="from">([^<]*)<\/small>/)?.[1]
    assert.equal(said, 'From must not be later than To (2026-03-01): a range runs from an earlier or the same day to a later one.')
    assert.equal(valueOf(page.html, 'f-from'), '2026-03-02')
    assert.equal(valueOf(page.html, 'f-to'), '2026-03-01')
    assert.notInclude(page.html, 'data-usage-id=')
    assert.notInclude(page.html, '/dashboard/usage.csv', 'no export of filters refused')
    // Before: a 200 with an empty list, nothing said.
    const csv = await portal.get('/dashboard/usage.csv?from=2026-03-02&to=2026-03-01')
    assert.equal(csv.status, 422)
    assert.include(csv.html, 'From must not be later than To')

    const good = await portal.get(`/dashboard/usage?from=${today()}&to=${today()}`)
    assert.equal(good.status, 200)
    assert.notInclude(good.html, 'data-range-error')
    assert.lengthOf([...good.html.matchAll(/data-usage-id=/g)], 1)
    const sameDay = await portal.get('/dashboard/usage?from=2026-03-01&to=2026-03-01')
    assert.equal(sameDay.status, 200, 'one day is a range')
  })
})
