import { randomUUID } from 'node:crypto'
import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import type Anthropic from '@anthropic-ai/sdk'
import OpenAI, { toFile } from 'openai'
import { createUser } from '#actions/create_user'
import { setPrice } from '#actions/set_price'
import { insertObject } from '#gateway/batches/batch_store'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { anthropic } from '#tests/clients'
import { PageClient, htmlText } from '#tests/page_client'
import { PanelClient, textOf } from '#tests/panel_client'
import { gateway, openai, refreshCaches, resetDatabase, seedChannel, seedUser, startMock, usageRows } from '#tests/helpers'

/**
 * The panel's Batches pages (/admin/batches: every user's batches, filters,
 * keyset pages, a batch's page, Cancel) and the portal's (/dashboard/batches:
 * the signed-in user's own). The panel's Cancel goes through the service
 * code the API's cancel runs (BatchService.cancel): held, then billed once
 * for what was answered, as a cancel through the API; audited.
 */

const ADMIN = { email: 'batch-pages-admin@test.local', password: 'admin-password' }

/** A batch input file of `lines` chat requests for gpt-4o-mini */
function jsonl(lines: number): Buffer {
  const out = Array.from({ length: lines }, (_, i) =>
    JSON.stringify({ custom_id: `r${i}`, method: 'POST', url: '/v1/chat/completions', body: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: `q${i}` }], max_tokens: 20 } })
  )
  return Buffer.from(`${out.join('\n')}\n`)
}

/** An OpenAI batch made through the API: `polls` GETs before the mock completes it */
async function openaiBatch(client: OpenAI, lines = 4, polls = 5) {
  const file = await client.files.create({ file: await toFile(jsonl(lines), 'in.jsonl'), purpose: 'batch' })
  return client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h', metadata: { mock_polls: String(polls) } })
}

/** An Anthropic message batch made through the API */
async function messageBatch(client: Anthropic, count = 4, polls = 5) {
  const requests = Array.from({ length: count }, (_, i) => ({
    custom_id: `m${i}`,
    params: { model: 'claude-sonnet-4', max_tokens: 20, messages: [{ role: 'user' as const, content: `q${i}` }] },
  }))
  return client.messages.batches.create({ requests, mock_polls: polls } as Anthropic.Messages.BatchCreateParams)
}

async function rowOf(publicId: string) {
  return db.from('batch_objects').where('public_id', publicId).first()
}

async function adminPanel() {
  const panel = new PanelClient()
  await panel.login(ADMIN.email, ADMIN.password)
  return panel
}

/** The gateway ids of the batches a list page shows, in its order */
function listed(html: string): string[] {
  return [...html.matchAll(/data-batch="([^"]+)"/g)].map((m) => m[1])
}

test.group('Batches pages (panel and portal)', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'openai-batches', provider: 'openai', baseUrl: mock.url, models: ['gpt-4o-mini'] })
    await seedChannel({ name: 'claude-batches', provider: 'anthropic', baseUrl: mock.url, models: ['claude-sonnet-4'] })
    for (const model of ['gpt-4o-mini', 'claude-sonnet-4']) await setPrice({ model, input: '2', output: '8' })
    await createUser({ ...ADMIN, role: 'admin' })
    await refreshCaches()
    return async () => {
      await mock.stop()
      // The next file starts on fresh tables whose ids restart: no hold of a batch made here, nor the memory of
      // one released, may stay in this process's BatchHolds (a sync releases the holds, the next forgets them).
      await db.from('batch_objects').delete()
      const { holds } = (await gateway()).batches
      await holds.sync()
      await new Promise((resolve) => setTimeout(resolve, 5))
      await holds.sync()
    }
  })

  test('the list: newest first, both kinds, owner, key, model, status, hold; filters by owner, kind and status', async ({ assert }) => {
    const alice = await seedUser({ balance: '5' })
    const bob = await seedUser({ balance: '5' })
    const first = await openaiBatch(openai(alice.key))
    const second = await messageBatch(anthropic(bob.key))
    const panel = await adminPanel()

    const page = await panel.get('/admin/batches')
    assert.equal(page.status, 200)
    const ids = listed(page.html)
    assert.isBelow(ids.indexOf(second.id), ids.indexOf(first.id), 'newest first')
    // An e-mail may break before its @ (<wbr>)
    const text = textOf(page.html.replace(/<wbr>/g, ''))
    assert.include(text, alice.email)
    assert.include(text, bob.email)
    assert.include(page.html, `href="/admin/users/${alice.userId}"`)
    assert.include(page.html, 'data-kind="anthropic"')
    assert.include(page.html, 'data-kind="openai"')
    assert.include(page.html, 'href="/admin/batches"', 'the navigation links the page')
    const held = (await rowOf(first.id)).hold
    assert.include(page.html, `data-held="${held}"`, 'a running batch shows what it holds')

    // The owner's page links their batches
    assert.include((await panel.get(`/admin/users/${alice.userId}`)).html, `href="/admin/batches?owner=${alice.userId}"`)
    const byOwner = await panel.get(`/admin/batches?owner=${encodeURIComponent(alice.email.toUpperCase())}`)
    assert.deepEqual(listed(byOwner.html), [first.id])
    assert.deepEqual(listed((await panel.get(`/admin/batches?owner=${bob.userId}`)).html), [second.id])
    const anthropicOnly = listed((await panel.get('/admin/batches?kind=anthropic')).html)
    assert.include(anthropicOnly, second.id)
    assert.notInclude(anthropicOnly, first.id)
    const openaiOnly = listed((await panel.get('/admin/batches?kind=openai')).html)
    assert.include(openaiOnly, first.id)
    assert.notInclude(openaiOnly, second.id)
    assert.includeMembers(listed((await panel.get('/admin/batches?status=running')).html), [first.id, second.id])
    assert.notInclude(listed((await panel.get('/admin/batches?status=billed')).html), first.id)
    assert.deepEqual(listed((await panel.get(`/admin/batches?owner=${alice.userId}&status=in_progress`)).html), [])
  })

  test('keyset pages of 50: the next page starts after the last batch shown', async ({ assert }) => {
    const carol = await seedUser({ balance: '1' })
    const made: string[] = []
    for (let i = 0; i < 53; i++) {
      const row = await insertObject({
        kind: 'batch',
        upstream_id: `paging-${i}`,
        user_id: carol.userId,
        api_key_id: carol.keyId,
        channel_id: null,
        model: 'gpt-4o-mini',
        served_model: 'gpt-4o-mini',
        purpose: null,
        endpoint: '/v1/chat/completions',
        filename: null,
        bytes: 10,
        lines: 1,
        completion_hold: 1,
        input_file_id: null,
        status: 'completed',
        object: { status: 'completed', request_counts: { total: 1, completed: 1, failed: 0 } },
        request_id: randomUUID(),
      })
      // Billed (as if long ago): nothing for the sweep another test runs to look at
      await db.from('batch_objects').where('id', row.id).update({ billed_at: new Date(), billed_cost: '0.001' })
      made.push(row.public_id)
    }
    const panel = await adminPanel()
    const one = await panel.get(`/admin/batches?owner=${carol.userId}`)
    assert.deepEqual(listed(one.html), made.slice(3).reverse())
    const next = /href="(\/admin\/batches\?[^"]*before=\d+[^"]*)"/.exec(one.html)
    assert.isNotNull(next, 'a next-page link')
    const two = await panel.get(next![1].replace(/&amp;/g, '&'))
    assert.deepEqual(listed(two.html), made.slice(0, 3).reverse())
    assert.include(textOf(two.html), 'First page')
    assert.include(textOf(one.html), '1 completed')
  })

  test("a batch's page: the row and the upstream object's main fields, never the channel's key or base URL", async ({ assert }) => {
    const dave = await seedUser({ balance: '5' })
    const batch = await messageBatch(anthropic(dave.key), 2, 0)
    const row = await rowOf(batch.id)
    const panel = await adminPanel()
    const page = await panel.get(`/admin/batches/${row.id}`)
    assert.equal(page.status, 200)
    const text = textOf(page.html)
    assert.include(text, batch.id)
    assert.include(text, row.upstream_id)
    assert.include(text, 'processing_status')
    assert.include(text, 'claude-sonnet-4')
    assert.include(text, 'claude-batches')
    assert.include(page.html, `href="/admin/users/${dave.userId}"`)
    assert.notInclude(page.html, mock.url, 'no base URL (nor the upstream results_url under it)')
    assert.notInclude(page.html, '127.0.0.1:' + new URL(mock.url).port)
    assert.notInclude(page.html, 'upstream-secret')
    assert.include(page.html, `action="/admin/batches/${row.id}/cancel"`, 'a running batch can be cancelled')

    // Ended and billed (the look below): the cost, its usage row, no Cancel.
    await anthropic(dave.key).messages.batches.retrieve(batch.id)
    const [usage] = await usageRows(dave.userId)
    const billed = await panel.get(`/admin/batches/${row.id}`)
    assert.include(billed.html, `href="/admin/usage/${usage.id}"`)
    assert.include(textOf(billed.html), 'Billed')
    assert.include(textOf(billed.html), 'succeeded')
    assert.notInclude(billed.html, `/admin/batches/${row.id}/cancel`)
    const list = await panel.get(`/admin/batches?owner=${dave.userId}`)
    assert.include(list.html, `data-billed="${(await rowOf(batch.id)).billed_cost}"`)
    assert.include(list.html, `href="/admin/usage/${usage.id}"`)
  })

  test("Cancel in the panel does what the API's cancel does: held until it stops, then billed once for what it answered; audited", async ({ assert }) => {
    const gw = await gateway()
    const erin = await seedUser({ balance: '5' })
    const client = openai(erin.key)
    const batch = await openaiBatch(client, 4, 5)
    const row = await rowOf(batch.id)
    assert.isTrue(gw.batches.holds.heldFor(erin.userId) > 0n)
    const panel = await adminPanel()
    await panel.get(`/admin/batches/${row.id}`)
    const cancelled = await panel.post(`/admin/batches/${row.id}/cancel`)
    assert.equal(cancelled.status, 302)
    assert.equal(cancelled.location, `/admin/batches/${row.id}`)
    const shown = await panel.follow(cancelled)
    assert.include(textOf(shown.html), 'Cancel asked')
    assert.equal([...mock.batches.batches.values()].find((b) => b.id === row.upstream_id)!.status, 'cancelling', 'cancelled upstream')
    assert.equal((await rowOf(batch.id)).status, 'cancelling')
    assert.isTrue(gw.batches.holds.heldFor(erin.userId) > 0n, "still held while it stops")
    assert.notInclude(shown.html, `/admin/batches/${row.id}/cancel`, 'no second Cancel while it stops')

    const audit = await db.from('audit_log').where({ action: 'batch.cancel', subject_id: row.id }).first()
    assert.exists(audit)
    assert.equal(audit.actor, ADMIN.email)
    assert.equal(audit.source, 'panel')
    assert.include(audit.summary, batch.id)
    assert.deepEqual(audit.after, { status: 'cancelling' })

    // The next look (or the sweep) finds it cancelled: billed as the API's cancel bills it (batches.spec.ts), once.
    const ended = await client.batches.retrieve(batch.id)
    assert.equal(ended.status, 'cancelled')
    await gw.batches.sweep()
    const rows = await usageRows(erin.userId)
    assert.lengthOf(rows, 1)
    assert.include(rows[0], { endpoint: 'batch', error_code: 'batch_cancelled' })
    assert.equal(rows[0].cost, (await rowOf(batch.id)).billed_cost)
    assert.equal(gw.batches.holds.heldFor(erin.userId), 0n)
    // The same batch cancelled through the API costs the same, to the pico-dollar.
    const twin = await seedUser({ balance: '5' })
    const twinClient = openai(twin.key)
    const twinBatch = await openaiBatch(twinClient, 4, 5)
    await twinClient.batches.cancel(twinBatch.id)
    await twinClient.batches.retrieve(twinBatch.id)
    const [twinRow] = await usageRows(twin.userId)
    assert.include(twinRow, { endpoint: 'batch', error_code: 'batch_cancelled', cost: rows[0].cost, prompt_tokens: rows[0].prompt_tokens })

    // A batch that has ended: refused beside the button, nothing asked upstream, nothing audited.
    const again = await panel.post(`/admin/batches/${row.id}/cancel`)
    assert.equal(again.status, 302)
    assert.include(textOf((await panel.follow(again)).html), 'has ended and is billed')
    assert.equal(await db.from('audit_log').where({ action: 'batch.cancel', subject_id: row.id }).count('* as n').first().then((r: any) => Number(r.n)), 1)
  })

  test("Cancel of an Anthropic message batch in the panel: canceling, then ended and billed as canceled", async ({ assert }) => {
    const gw = await gateway()
    const fay = await seedUser({ balance: '5' })
    const client = anthropic(fay.key)
    const batch = await messageBatch(client, 4, 5)
    const row = await rowOf(batch.id)
    const panel = await adminPanel()
    await panel.get(`/admin/batches/${row.id}`)
    const cancelled = await panel.post(`/admin/batches/${row.id}/cancel`)
    assert.equal(cancelled.status, 302)
    assert.equal((await rowOf(batch.id)).status, 'canceling')
    const ended = await client.messages.batches.retrieve(batch.id)
    assert.equal(ended.processing_status, 'ended')
    const rows = await usageRows(fay.userId)
    assert.lengthOf(rows, 1)
    assert.include(rows[0], { endpoint: 'messages.batch', error_code: 'batch_canceled' })
    assert.equal(gw.batches.holds.heldFor(fay.userId), 0n)
    assert.exists(await db.from('audit_log').where({ action: 'batch.cancel', subject_id: row.id }).first())
  })

  test('a Cancel the upstream cannot take (its channel gone) is said beside the button; nothing audited, still held', async ({ assert }) => {
    const gw = await gateway()
    const lee = await seedUser({ balance: '5' })
    const batch = await openaiBatch(openai(lee.key))
    const row = await rowOf(batch.id)
    // As when its channel is deleted (channel_id SET NULL), before the sweep closes it
    await db.from('batch_objects').where('id', row.id).update({ channel_id: null })
    const panel = await adminPanel()
    await panel.get(`/admin/batches/${row.id}`)
    const refused = await panel.post(`/admin/batches/${row.id}/cancel`)
    assert.equal(refused.status, 302)
    const shown = textOf((await panel.follow(refused)).html)
    assert.include(shown, `The upstream did not cancel batch ${batch.id}`)
    assert.include(shown, 'no longer available')
    assert.notExists(await db.from('audit_log').where({ action: 'batch.cancel', subject_id: row.id }).first())
    assert.equal((await rowOf(batch.id)).status, 'validating')
    assert.isTrue(gw.batches.holds.heldFor(lee.userId) > 0n)
  })

  test('a Cancel without the form\'s CSRF token cancels nothing', async ({ assert }) => {
    const gus = await seedUser({ balance: '5' })
    const batch = await openaiBatch(openai(gus.key))
    const row = await rowOf(batch.id)
    const panel = await adminPanel()
    const refused = await panel.post(`/admin/batches/${row.id}/cancel`, {}, { csrf: false })
    assert.notEqual(refused.location, `/admin/batches/${row.id}`)
    assert.equal((await rowOf(batch.id)).status, 'validating')
    assert.notExists(await db.from('audit_log').where({ action: 'batch.cancel', subject_id: row.id }).first())
  })

  test('the portal lists the signed-in user\'s own batches only, newest first; a deleted message batch is gone there', async ({ assert }) => {
    const hal = await seedUser({ balance: '5' })
    const ivy = await seedUser({ balance: '5' })
    const mine = await openaiBatch(openai(hal.key))
    const mineToo = await messageBatch(anthropic(hal.key), 1, 0)
    const theirs = await openaiBatch(openai(ivy.key))
    const portal = new PageClient()
    await portal.login(hal.email)
    const page = await portal.get('/dashboard/batches')
    assert.equal(page.status, 200)
    assert.deepEqual(listed(page.body), [mineToo.id, mine.id])
    assert.notInclude(page.body, theirs.id)
    assert.notInclude(page.body, ivy.email)
    assert.include(page.body, 'href="/dashboard/batches"', 'the navigation links the page')
    assert.include(htmlText(page.body), 'Batches')

    // Ended, billed, then deleted through the API: the usage row stays, the batch is gone from the list.
    await anthropic(hal.key).messages.batches.retrieve(mineToo.id)
    const [usage] = await usageRows(hal.userId)
    assert.include((await portal.get('/dashboard/batches')).body, `href="/dashboard/usage/${usage.id}"`)
    await anthropic(hal.key).messages.batches.delete(mineToo.id)
    assert.deepEqual(listed((await portal.get('/dashboard/batches')).body), [mine.id])

    // In Vietnamese and Chinese too (the page's words are translated).
    const vi = new PageClient({ 'accept-language': 'vi' })
    await vi.login(hal.email)
    assert.include(htmlText((await vi.get('/dashboard/batches')).body), 'Lô yêu cầu')
    assert.equal((await portal.get('/dashboard/batches?before=abc')).status, 422)
  })

  test("the portal's Cancel: the user's own running batch, through the panel's action (audited as the user); another user's batch is not there", async ({ assert }) => {
    const gw = await gateway()
    const kim = await seedUser({ balance: '5' })
    const lou = await seedUser({ balance: '5' })
    const batch = await openaiBatch(openai(kim.key), 4, 5)
    const theirs = await openaiBatch(openai(lou.key), 4, 5)
    const row = await rowOf(batch.id)
    const theirRow = await rowOf(theirs.id)
    const portal = new PageClient()
    await portal.login(kim.email)
    const page = await portal.get('/dashboard/batches')
    assert.include(page.body, `/dashboard/batches/${row.id}/cancel`, 'a running batch offers Cancel')

    // Another user's batch: 404, nothing asked upstream.
    const foreign = await portal.post(`/dashboard/batches/${theirRow.id}/cancel`, {})
    assert.equal(foreign.status, 404)
    assert.equal((await rowOf(theirs.id)).status, 'validating')
    // Without the form's token: nothing.
    await portal.post(`/dashboard/batches/${row.id}/cancel`, {}, { csrf: false })
    assert.equal((await rowOf(batch.id)).status, 'validating')

    await portal.get('/dashboard/batches')
    const cancelled = await portal.post(`/dashboard/batches/${row.id}/cancel`, {})
    assert.equal(cancelled.status, 302)
    assert.equal(cancelled.location, '/dashboard/batches')
    assert.equal((await rowOf(batch.id)).status, 'cancelling')
    assert.include(htmlText((await portal.get('/dashboard/batches')).body), `Cancel asked of batch ${batch.id}`)
    const audit = await db.from('audit_log').where({ action: 'batch.cancel', subject_id: row.id }).first()
    assert.include(audit, { actor: kim.email, source: 'portal' })

    // Once it stops it is billed once, as any cancel; a second Cancel is refused with the reason.
    await openai(kim.key).batches.retrieve(batch.id)
    const rows = await usageRows(kim.userId)
    assert.lengthOf(rows, 1)
    assert.include(rows[0], { endpoint: 'batch', error_code: 'batch_cancelled' })
    assert.equal(gw.batches.holds.heldFor(kim.userId), 0n)
    const again = await portal.post(`/dashboard/batches/${row.id}/cancel`, {})
    assert.equal(again.status, 302)
    assert.include(htmlText((await portal.get('/dashboard/batches')).body), 'The batch was not cancelled')
  })

  test('a user who is no admin gets the panel\'s 403, for the list, a batch and its Cancel', async ({ assert }) => {
    const jay = await seedUser({ balance: '5' })
    const batch = await openaiBatch(openai(jay.key))
    const row = await rowOf(batch.id)
    const panel = new PanelClient()
    await panel.login(jay.email, 'password123')
    assert.equal((await panel.get('/admin/batches')).status, 403)
    assert.equal((await panel.get(`/admin/batches/${row.id}`)).status, 403)
    await panel.get('/dashboard/batches')
    assert.equal((await panel.post(`/admin/batches/${row.id}/cancel`)).status, 403)
    assert.equal((await rowOf(batch.id)).status, 'validating')
    const anonymous = new PanelClient()
    const redirected = await anonymous.get('/admin/batches')
    assert.equal(redirected.status, 302)
    assert.match(redirected.location ?? '', /\/login/)
  })

  test('ids that name no batch are 404: unknown, too long, not a number, a file', async ({ assert }) => {
    const kim = await seedUser({ balance: '5' })
    const file = await openai(kim.key).files.create({ file: await toFile(jsonl(1), 'f.jsonl'), purpose: 'batch' })
    const fileRow = await rowOf(file.id)
    const panel = await adminPanel()
    for (const path of ['/admin/batches/99999999', '/admin/batches/1234567890123456789', '/admin/batches/abc', `/admin/batches/${fileRow.id}`]) {
      assert.equal((await panel.get(path)).status, 404, path)
    }
    await panel.get('/admin/batches')
    assert.equal((await panel.post('/admin/batches/99999999/cancel')).status, 404)
    assert.equal((await panel.post(`/admin/batches/${fileRow.id}/cancel`)).status, 404)
  })

  test('filter values the page cannot use are said plainly (422), never a 500', async ({ assert }) => {
    const panel = await adminPanel()
    const cases: Array<[string, string]> = [
      ['status=bogus', 'Status must be one of'],
      ['kind=azure', 'Kind must be openai, anthropic or google'],
      ['before=abc', 'must be a batch id'],
      ['before=1e20', 'must be a batch id'],
      ['status=running&status=billed', 'Status'],
    ]
    for (const [query, message] of cases) {
      const page = await panel.get(`/admin/batches?${query}`)
      assert.equal(page.status, 422, query)
      assert.include(textOf(page.html), message, query)
      assert.notInclude(page.html, 'data-table="batches"', query)
    }
    for (const owner of ['nobody@test.local', '99999999999999999999', '999999', 'a\u0000b@test.local']) {
      const page = await panel.get(`/admin/batches?owner=${encodeURIComponent(owner)}`)
      assert.equal(page.status, 200, owner)
      assert.include(textOf(page.html), `No user has the id or e-mail "${owner}"`)
    }
  })
})

test.group('Batches pages: an upstream object with times out of range (hostile pass 23b)', (group) => {
  group.setup(async () => {
    await resetDatabase()
    await createUser({ ...ADMIN, role: 'admin' })
    return async () => {
      await db.from('batch_objects').delete()
    }
  })

  test('unix seconds past what a Date holds (1e20) show as no time, on the panel list, the batch page and the portal: never a 500', async ({ assert }) => {
    const dan = await seedUser({ balance: '1' })
    const rows = []
    for (const [endpoint, object] of [
      ['/v1/chat/completions', { status: 'completed', created_at: 1e20, completed_at: 1e20, expires_at: 1e300 }],
      ['/v1/messages', { processing_status: 'ended', created_at: 1e20, ended_at: 1e20 }],
    ] as const) {
      const row = await insertObject({
        kind: 'batch',
        upstream_id: `far-${randomUUID()}`,
        user_id: dan.userId,
        api_key_id: dan.keyId,
        channel_id: null,
        model: 'gpt-4o-mini',
        served_model: 'gpt-4o-mini',
        purpose: null,
        endpoint,
        filename: null,
        bytes: 10,
        lines: 1,
        completion_hold: 1,
        input_file_id: null,
        status: endpoint === '/v1/messages' ? 'ended' : 'completed',
        object,
        request_id: randomUUID(),
      })
      await db.from('batch_objects').where('id', row.id).update({ billed_at: new Date(), billed_cost: '0' })
      rows.push(row)
    }
    const panel = await adminPanel()
    assert.equal((await panel.get('/admin/batches')).status, 200)
    for (const row of rows) assert.equal((await panel.get(`/admin/batches/${row.id}`)).status, 200)
    const portal = new PageClient()
    await portal.login(dan.email)
    const page = await portal.get('/dashboard/batches')
    assert.equal(page.status, 200, page.body.slice(0, 500))
    assert.deepEqual(listed(page.body), rows.map((r) => r.public_id).reverse())
  })
})
