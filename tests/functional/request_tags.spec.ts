import { test } from '@japa/runner'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { createUser } from '#actions/create_user'
import { createApiKey } from '#actions/issue_api_key'
import { DateTime } from 'luxon'
import db from '@adonisjs/lucid/services/db'
import { pruneUsage } from '#actions/prune_usage'
import { PanelClient, textOf } from '#tests/panel_client'
import { PageClient } from '#tests/page_client'
import { baseUrl, gateway, meterEvent, post, resetDatabase, seedChannel, seedPrice, seedUser, startMock, usageRows, type SeededUser } from '#tests/helpers'

const chat = (extra: Record<string, unknown> = {}) => ({ model: 'tag-model', messages: [{ role: 'user', content: 'hi' }], ...extra })
const bearer = (user: SeededUser, headers: Record<string, string> = {}) => ({ authorization: `Bearer ${user.key}`, ...headers })
const anthropic = (user: SeededUser, headers: Record<string, string> = {}) => ({
  'x-api-key': user.key,
  'anthropic-version': '2023-06-01',
  ...headers,
})

test.group('Request tags: recorded on the usage row', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'tag-mock', baseUrl: mock.url, models: ['tag-*'] })
    await seedPrice('tag-model', '1', '2')
    return () => mock.stop()
  })

  test('x-gateway-tags and x-litellm-tags land on the row, trimmed, case kept; untagged rows are NULL', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    await (await post('/v1/chat/completions', chat(), bearer(user, { 'x-gateway-tags': ' Team-A, feature:search ,,' }))).text()
    await (await post('/v1/chat/completions', chat(), bearer(user, { 'x-litellm-tags': 'prod/eu' }))).text()
    await (await post('/v1/chat/completions', chat(), bearer(user, { 'x-gateway-tags': 'a,b', 'x-litellm-tags': 'b,c' }))).text()
    await (await post('/v1/chat/completions', chat(), bearer(user))).text()
    const rows = await usageRows(user.userId)
    assert.deepEqual(
      rows.map((r) => r.tags),
      [['Team-A', 'feature:search'], ['prod/eu'], ['a', 'b', 'c'], null]
    )
    assert.isTrue(rows.every((r) => r.status === 200))
  })

  test('a chat body\'s metadata.tags are recorded; a list of tags is kept from the provider (OpenAI refuses it), other metadata and string tags go up', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const answer = await post('/v1/chat/completions', chat({ metadata: { tags: ['cust:42', 'batch'], run: 'r1' } }), bearer(user, { 'x-gateway-tags': 'hdr' }))
    assert.equal(answer.status, 200)
    await answer.text()
    const sent = JSON.parse(mock.lastRequest()!.body.toString())
    assert.deepEqual(sent.metadata, { run: 'r1' }, 'the list of tags is the gateway\'s; the rest of metadata is the provider\'s')
    const onlyTags = await post('/v1/chat/completions', chat({ metadata: { tags: ['solo'] } }), bearer(user))
    await onlyTags.text()
    assert.notProperty(JSON.parse(mock.lastRequest()!.body.toString()), 'metadata')
    const asString = await post('/v1/chat/completions', chat({ metadata: { tags: 'a,b' } }), bearer(user))
    await asString.text()
    assert.deepEqual(JSON.parse(mock.lastRequest()!.body.toString()).metadata, { tags: 'a,b' }, 'a string is valid OpenAI metadata: sent as is')
    const rows = await usageRows(user.userId)
    assert.deepEqual(rows.map((r) => r.tags), [['hdr', 'cust:42', 'batch'], ['solo'], ['a', 'b']])
  })

  test('an Anthropic-format call with the header, and streams, are tagged', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const messages = await post(
      '/v1/messages',
      { model: 'tag-model', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] },
      anthropic(user, { 'x-gateway-tags': 'anthropic-client' })
    )
    assert.equal(messages.status, 200)
    await messages.text()
    const stream = await post('/v1/chat/completions', chat({ stream: true }), bearer(user, { 'x-gateway-tags': 'streamed' }))
    assert.equal(stream.status, 200)
    assert.include(await stream.text(), '[DONE]')
    const rows = await usageRows(user.userId)
    assert.deepEqual(rows.map((r) => [r.endpoint, r.stream, r.tags]), [
      ['messages', false, ['anthropic-client']],
      ['chat.completions', true, ['streamed']],
    ])
  })

  test('a bad tag is a 400 invalid_tags in the endpoint\'s wire format, with a usage row', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const before = mock.requests.length
    const openaiShape = await post('/v1/chat/completions', chat(), bearer(user, { 'x-gateway-tags': 'ok,not ok' }))
    assert.equal(openaiShape.status, 400)
    const openaiError: any = await openaiShape.json()
    assert.equal(openaiError.error.code, 'invalid_tags')
    assert.equal(openaiError.error.type, 'invalid_request_error')
    assert.include(openaiError.error.message, 'not ok')

    const anthropicShape = await post(
      '/v1/messages',
      { model: 'tag-model', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] },
      anthropic(user, { 'x-litellm-tags': 'x'.repeat(65) })
    )
    assert.equal(anthropicShape.status, 400)
    const anthropicError: any = await anthropicShape.json()
    assert.equal(anthropicError.type, 'error')
    assert.equal(anthropicError.error.type, 'invalid_request_error')
    assert.include(anthropicError.error.message, 'x-litellm-tags')

    const tooMany = await post('/v1/chat/completions', chat({ metadata: { tags: Array.from({ length: 11 }, (_, i) => `t${i}`) } }), bearer(user))
    assert.equal(tooMany.status, 400)
    assert.equal(((await tooMany.json()) as any).error.code, 'invalid_tags')
    assert.equal(mock.requests.length, before, 'nothing reached the upstream')

    const rows = await usageRows(user.userId)
    assert.deepEqual(rows.map((r) => [r.status, r.error_code, r.tags, Number(r.cost)]), [
      [400, 'invalid_tags', null, 0],
      [400, 'invalid_tags', null, 0],
      [400, 'invalid_tags', null, 0],
    ])
  })
})

test.group('Request tags: the usage pages, CSVs and management API filter and report by tag', (group) => {
  let mock: MockUpstream
  let adminKey = ''
  let admin: PanelClient
  let alice: SeededUser
  let bob: SeededUser

  async function api(path: string) {
    const response = await fetch(`${baseUrl()}/api/admin${path}`, { headers: { authorization: `Bearer ${adminKey}` } })
    return { status: response.status, body: (await response.json()) as any }
  }

  /** data-tags of each row of a usage page, newest first ('' for an untagged row's absence) */
  const taggedRows = (html: string) => [...html.matchAll(/data-tags="([^"]*)"/g)].map((m) => m[1])

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'tag-report-mock', baseUrl: mock.url, models: ['tag-*'] })
    // 12 prompt and 5 completion tokens per mock answer: 12 × 1.5 + 5 × 2.25 = 29.25 µUSD a request.
    await seedPrice('tag-model', '1.5', '2.25')
    const email = `tags-admin-${Date.now()}@test.local`
    await createUser({ email, password: 'password123', role: 'admin' })
    adminKey = (await createApiKey({ userRef: email, name: 'tag-reports', manage: true })).key
    admin = new PanelClient()
    await admin.login(email, 'password123')
    alice = await seedUser({ balance: '1' })
    bob = await seedUser({ balance: '1' })
    const send = async (user: SeededUser, headers: Record<string, string>) => {
      const answer = await post('/v1/chat/completions', chat(), bearer(user, headers))
      if (answer.status !== 200) throw new Error(`seed call: ${answer.status}`)
      await answer.text()
    }
    await send(alice, { 'x-gateway-tags': 'team-a,feature:x' })
    await send(alice, { 'x-gateway-tags': 'team-a' })
    await send(alice, { 'x-litellm-tags': 'team-b' })
    await send(alice, {})
    await send(bob, { 'x-gateway-tags': 'team-a' })
    return () => mock.stop()
  })

  test('GET /api/admin/spend/tags: requests, tokens and exact cost per tag, untagged as null, per user', async ({ assert }) => {
    const all = await api('/spend/tags')
    assert.equal(all.status, 200)
    assert.deepEqual(all.body.data, [
      { tag: 'team-a', requests: 3, input_tokens: 36, output_tokens: 15, cost: '0.00008775' },
      { tag: 'feature:x', requests: 1, input_tokens: 12, output_tokens: 5, cost: '0.00002925' },
      { tag: 'team-b', requests: 1, input_tokens: 12, output_tokens: 5, cost: '0.00002925' },
      { tag: null, requests: 1, input_tokens: 12, output_tokens: 5, cost: '0.00002925' },
    ])
    const today = new Date().toISOString().slice(0, 10)
    assert.deepEqual([all.body.from <= today, all.body.to], [true, today])
    const forBob = await api(`/spend/tags?user=${encodeURIComponent(bob.email)}`)
    assert.deepEqual(forBob.body.data, [{ tag: 'team-a', requests: 1, input_tokens: 12, output_tokens: 5, cost: '0.00002925' }])
    assert.deepEqual((await api('/spend/tags?from=2020-01-01&to=2020-01-31')).body.data, [])
  })

  test('GET /api/admin/usage?tag= keeps the tagged requests; each object has its tags (null untagged)', async ({ assert }) => {
    const tagged = await api('/usage?tag=team-a')
    assert.equal(tagged.status, 200)
    assert.deepEqual(
      tagged.body.data.map((r: any) => [r.user_id, r.tags]),
      [
        [bob.userId, ['team-a']],
        [alice.userId, ['team-a']],
        [alice.userId, ['team-a', 'feature:x']],
      ]
    )
    const mine = await api(`/usage?user=${alice.userId}`)
    assert.deepEqual(mine.body.data.map((r: any) => r.tags), [null, ['team-b'], ['team-a'], ['team-a', 'feature:x']])
    assert.deepEqual((await api('/usage?tag=nobody')).body.data, [])
  })

  test('the admin Usage page filters by tag and shows the tags; its CSV has them last', async ({ assert }) => {
    const page = await admin.get('/admin/usage?tag=team-a')
    assert.equal(page.status, 200)
    assert.deepEqual(taggedRows(page.html), ['team-a', 'team-a', 'team-a,feature:x'])
    assert.include(page.html, 'href="/admin/usage?tag=feature%3Ax')
    assert.include(page.html, 'value="team-a"')
    const everyone = await admin.get('/admin/usage')
    assert.lengthOf(taggedRows(everyone.html), 4)
    assert.lengthOf([...everyone.html.matchAll(/<td class="nowrap"><a href="\/admin\/usage\/\d+"/g)], 5, 'the untagged row has no tags')

    const csv = (await admin.get(`/admin/usage/export.csv?user=${alice.userId}`)).html.trim().split('\n')
    assert.isTrue(csv[0].endsWith(',cache_hit,tags,end_user'))
    // The tags' cell, before the (empty) end user's.
    assert.deepEqual(csv.slice(1).map((l) => l.slice(0, -1)).map((l) => (l.endsWith('"') ? l.slice(l.lastIndexOf(',"') + 1) : l.split(',').at(-1))), [
      '',
      'team-b',
      'team-a',
      '"team-a,feature:x"',
    ])
    const [tagged] = await usageRows(bob.userId)
    assert.deepEqual(taggedRows((await admin.get(`/admin/usage/${tagged.id}`)).html), ['team-a'], "the request's page")
    const filtered = (await admin.get('/admin/usage/export.csv?tag=team-b')).html.trim().split('\n')
    assert.lengthOf(filtered, 2)
    assert.isTrue(filtered[1].endsWith(',false,team-b,'))
  })

  test('the portal usage log filters by tag and shows the tags; its CSV has them last; a bad tag is reported', async ({ assert }) => {
    const portal = new PageClient()
    await portal.login(alice.email)
    const page = await portal.get('/dashboard/usage?tag=team-a')
    assert.equal(page.status, 200)
    assert.deepEqual(taggedRows(page.body), ['team-a', 'team-a,feature:x'])
    const all = await portal.get('/dashboard/usage')
    assert.deepEqual(taggedRows(all.body), ['team-b', 'team-a', 'team-a,feature:x'])
    assert.include(all.body, 'id="f-tag"')
    const [first] = await usageRows(alice.userId)
    assert.deepEqual(taggedRows((await portal.get(`/dashboard/usage/${first.id}`)).body), ['team-a,feature:x'], "the request's page")

    const csv = (await portal.get('/dashboard/usage.csv?tag=team-b')).body.trim().split('\r\n')
    assert.isTrue(csv[0].endsWith(',cache_hit,tags,end_user'))
    assert.lengthOf(csv, 2)
    assert.isTrue(csv[1].endsWith(',false,team-b,'))
    const whole = (await portal.get('/dashboard/usage.csv')).body.trim().split('\r\n')
    assert.isTrue(whole[1].endsWith(',false,,'), 'an untagged request leaves the cell empty')

    const bad = await portal.get('/dashboard/usage?tag=not%20a%20tag')
    assert.equal(bad.status, 422)
    assert.include(bad.body, 'flash--error')
  })

  test('GET /v1/generation gives a request\'s tags', async ({ assert }) => {
    const answer = await post('/v1/chat/completions', chat(), bearer(alice, { 'x-gateway-tags': 'lookup' }))
    await answer.text()
    const lookup = async (id: string) =>
      (await (await fetch(`${baseUrl()}/v1/generation?id=${id}`, { headers: { authorization: `Bearer ${alice.key}` } })).json()) as any
    assert.deepEqual((await lookup(answer.headers.get('x-request-id')!)).data.tags, ['lookup'])
    const plain = await post('/v1/chat/completions', chat(), bearer(alice))
    await plain.text()
    assert.isNull((await lookup(plain.headers.get('x-request-id')!)).data.tags)
  })

  test('finished days come from the daily rollups (a tag row per tag and day), the same as from the rows, late rows too', async ({ assert }) => {
    const user = await seedUser()
    const meter = (await gateway()).meter
    const day = DateTime.utc().startOf('day').minus({ days: 3 })
    const at = (hours: number, tags: string[] | null) => ({ ...meterEvent(user.userId, 'tag-model'), tags, createdAt: day.plus({ hours }).toJSDate() })
    // 10 in, 5 out, 0.001 USD each.
    meter.record(at(1, ['roll-a', 'roll-b']))
    meter.record(at(2, ['roll-a']))
    meter.record(at(25, null))
    await meter.drain()
    const range = `from=${day.toISODate()}&to=${day.plus({ days: 1 }).toISODate()}`
    const expected = [
      { tag: 'roll-a', requests: 2, input_tokens: 20, output_tokens: 10, cost: '0.002' },
      { tag: 'roll-b', requests: 1, input_tokens: 10, output_tokens: 5, cost: '0.001' },
      { tag: null, requests: 1, input_tokens: 10, output_tokens: 5, cost: '0.001' },
    ]
    assert.deepEqual((await api(`/spend/tags?${range}`)).body.data, expected, 'from the rollups')
    assert.deepEqual((await api(`/spend/tags?${range}&user=${user.userId}`)).body.data, expected, 'from the rows (a user filter)')
    const rolled = await db.from('usage_daily').where('day', day.toISODate()!).whereIn('dim', ['tag', 'tagged']).orderBy(['dim', 'key']).select('dim', 'key', 'requests')
    assert.deepEqual(rolled.map((r) => [r.dim, r.key, r.requests]), [['tag', 'roll-a', 2], ['tag', 'roll-b', 1], ['tagged', '', 2]])

    // A late row for the rolled-up day marks it stale: the next read rolls it up again.
    meter.record(at(3, ['roll-b']))
    await meter.drain()
    assert.deepEqual((await api(`/spend/tags?${range}`)).body.data.find((r: any) => r.tag === 'roll-b'), {
      tag: 'roll-b', requests: 2, input_tokens: 20, output_tokens: 10, cost: '0.002',
    })
    const page = textOf((await admin.get(`/admin/usage?tag=roll-a&${range}`)).html)
    assert.match(page, /Requests 2\b/, "the page's totals for a tag alone come from its rollups")
  })

  test('spend per tag outlives the usage retention: a pruned day keeps its tag totals', async ({ assert }) => {
    const user = await seedUser()
    const meter = (await gateway()).meter
    const day = DateTime.utc().startOf('day').minus({ days: 40 })
    const at = (hours: number, tags: string[] | null) => ({ ...meterEvent(user.userId, 'tag-model'), tags, createdAt: day.plus({ hours }).toJSDate() })
    meter.record(at(1, ['old-a', 'old-b']))
    meter.record(at(2, ['old-a']))
    meter.record(at(3, null))
    await meter.drain()
    const range = `from=${day.toISODate()}&to=${day.toISODate()}`
    const expected = [
      { tag: 'old-a', requests: 2, input_tokens: 20, output_tokens: 10, cost: '0.002' },
      { tag: 'old-b', requests: 1, input_tokens: 10, output_tokens: 5, cost: '0.001' },
      { tag: null, requests: 1, input_tokens: 10, output_tokens: 5, cost: '0.001' },
    ]
    assert.deepEqual((await api(`/spend/tags?${range}`)).body.data, expected)
    const pruned = await pruneUsage({ keepDays: 31 })
    assert.equal(pruned.rows, 3)
    assert.deepEqual((await api(`/spend/tags?${range}`)).body.data, expected, 'from the rollups, pruned rows included')
    assert.deepEqual((await api(`/spend/tags?${range}&user=${user.userId}`)).body.data, [], 'the rows are gone')
  })
})
