import { test } from '@japa/runner'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { createUser } from '#actions/create_user'
import { createApiKey } from '#actions/issue_api_key'
import { postLedgerEntry } from '#actions/post_ledger_entry'
import { PageClient } from '#tests/page_client'
import { PanelClient } from '#tests/panel_client'
import { balanceAndLedger, baseUrl, gateway, post, refreshCaches, resetDatabase, seedChannel, seedPrice, seedUser, startMock, usageRows } from '#tests/helpers'

const chat = (content: string, extra: Record<string, unknown> = {}) => ({ model: 'cache-model', messages: [{ role: 'user', content }], ...extra })
const messages = (content: string, extra: Record<string, unknown> = {}) => ({ model: 'cache-model', max_tokens: 100, messages: [{ role: 'user', content }], ...extra })

async function call(path: string, key: string, body: unknown, headers: Record<string, string> = {}) {
  const auth: Record<string, string> = path.startsWith('/v1/messages') ? { 'x-api-key': key, 'anthropic-version': '2023-06-01' } : { authorization: `Bearer ${key}` }
  const response = await post(path, body, { ...auth, ...headers })
  return { status: response.status, headers: response.headers, text: await response.text() }
}

test.group('Response cache (x-gateway-cache-ttl)', (group) => {
  let mock: MockUpstream
  let received = () => 0

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock({ record: 50 })
    await seedChannel({ name: 'cache-mock', baseUrl: `${mock.url}`, models: ['cache-*'] })
    await seedPrice('cache-model', '1', '2')
    received = () => [...mock.received.values()].reduce((a, b) => a + b, 0)
    return () => mock.stop()
  })
  group.each.setup(async () => {
    ;(await gateway()).service.responseCache!.clear()
  })

  test('an identical request within the TTL is answered from the cache: same bytes, no provider call, not charged', async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    const before = received()
    const first = await call('/v1/chat/completions', user.key, chat('cache me'), { 'x-gateway-cache-ttl': '60' })
    assert.equal(first.status, 200)
    assert.equal(first.headers.get('x-gateway-cache'), 'MISS')
    const second = await call('/v1/chat/completions', user.key, chat('cache me'), { 'x-gateway-cache-ttl': '60' })
    assert.equal(second.status, 200)
    assert.equal(second.headers.get('x-gateway-cache'), 'HIT')
    assert.equal(second.text, first.text)
    assert.match(String(second.headers.get('age')), /^\d+$/)
    const status = (await (await fetch(`${baseUrl()}/api/status`)).json()) as any
    assert.equal(status.response_cache.entries, 1)
    assert.isAtLeast(status.response_cache.hits, 1)
    assert.notEqual(second.headers.get('x-request-id'), first.headers.get('x-request-id'))
    assert.equal(received() - before, 1, 'the provider was called once')

    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 2)
    assert.isAbove(Number(rows[0].cost), 0)
    assert.equal(Number(rows[1].cost), 0)
    assert.equal(rows[1].prompt_tokens, 0)
    assert.equal(rows[1].status, 200)
    assert.isTrue(rows[1].cache_hit)
    assert.isFalse(rows[0].cache_hit)
    const money = await balanceAndLedger(user.userId)
    assert.equal(money.ledger, money.balance)
    assert.equal(Number(money.balance), 10 - Number(rows[0].cost))
  })

  test('the usage pages and CSVs say which rows the cache answered', async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    await call('/v1/chat/completions', user.key, chat('for the pages'), { 'x-gateway-cache-ttl': '60' })
    await call('/v1/chat/completions', user.key, chat('for the pages'), { 'x-gateway-cache-ttl': '60' })
    const portal = new PageClient()
    await portal.login(user.email)
    const page = await portal.get('/dashboard/usage')
    assert.equal((page.body.match(/data-cache-hit/g) ?? []).length, 1)
    const csv = (await portal.get('/dashboard/usage.csv')).body.trim().split(/\r?\n/)
    // cache_hit, then the request tags and the end user (last; empty for these calls).
    assert.isTrue(csv[0].endsWith(',cache_hit,tags,end_user'))
    assert.deepEqual(csv.slice(1).map((l) => l.split(',').at(-3)).sort(), ['false', 'true'])

    const adminEmail = `cache-admin-${Date.now()}@test.local`
    await createUser({ email: adminEmail, password: 'password123', role: 'admin' })
    const admin = new PanelClient()
    await admin.login(adminEmail, 'password123')
    const list = await admin.get(`/admin/usage?user=${encodeURIComponent(user.email)}`)
    assert.equal((list.html.match(/data-cache-hit/g) ?? []).length, 1)
    const exported = (await admin.get(`/admin/usage/export.csv?user=${encodeURIComponent(user.email)}`)).html.trim().split('\n')
    assert.isTrue(exported[0].endsWith(',cache_hit,tags,end_user'))
    assert.includeMembers(exported.slice(1).map((l) => l.split(',').at(-3)), ['true', 'false'])
  })

  test('without the header nothing is cached or said; another body, model or user is another entry', async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    const other = await seedUser({ balance: '10' })
    const before = received()
    const plain = await call('/v1/chat/completions', user.key, chat('plain'))
    assert.isNull(plain.headers.get('x-gateway-cache'))
    await call('/v1/chat/completions', user.key, chat('plain'))
    assert.equal(received() - before, 2)

    await call('/v1/chat/completions', user.key, chat('shared words'), { 'x-gateway-cache-ttl': '60' })
    const otherUser = await call('/v1/chat/completions', other.key, chat('shared words'), { 'x-gateway-cache-ttl': '60' })
    assert.equal(otherUser.headers.get('x-gateway-cache'), 'MISS', "one user's answers are never served to another")
    const otherBody = await call('/v1/chat/completions', user.key, chat('shared words!'), { 'x-gateway-cache-ttl': '60' })
    assert.equal(otherBody.headers.get('x-gateway-cache'), 'MISS')
    const otherModel = await call('/v1/chat/completions', user.key, { ...chat('shared words'), model: 'cache-other' }, { 'x-gateway-cache-ttl': '60' })
    assert.equal(otherModel.headers.get('x-gateway-cache'), 'MISS')
    const again = await call('/v1/chat/completions', user.key, chat('shared words'), { 'x-gateway-cache-ttl': '60' })
    assert.equal(again.headers.get('x-gateway-cache'), 'HIT')
  })

  test('streams are stored as the client received them and replayed whole', async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    const body = chat('stream me', { stream: true, stream_options: { include_usage: true } })
    const before = received()
    const first = await call('/v1/chat/completions', user.key, body, { 'x-gateway-cache-ttl': '60' })
    assert.equal(first.headers.get('x-gateway-cache'), 'MISS')
    assert.include(first.text, 'data: [DONE]')
    const second = await call('/v1/chat/completions', user.key, body, { 'x-gateway-cache-ttl': '60' })
    assert.equal(second.headers.get('x-gateway-cache'), 'HIT')
    assert.match(String(second.headers.get('content-type')), /^text\/event-stream/)
    assert.equal(second.text, first.text)
    assert.equal(received() - before, 1)
  })

  test('translated answers (Anthropic clients on a chat channel), JSON and stream, are cached in the client\'s format', async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    for (const body of [messages('translate me'), messages('translate me', { stream: true })]) {
      const before = received()
      const first = await call('/v1/messages', user.key, body, { 'x-gateway-cache-ttl': '60' })
      assert.equal(first.status, 200)
      const second = await call('/v1/messages', user.key, body, { 'x-gateway-cache-ttl': '60' })
      assert.equal(second.headers.get('x-gateway-cache'), 'HIT')
      assert.equal(second.text, first.text)
      assert.isString(second.headers.get('request-id'))
      assert.equal(received() - before, 1)
    }
  })

  test('embeddings (OpenAI and Gemini wires) are cached the same way', async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    const before = received()
    const body = { model: 'cache-model', input: ['one', 'two'] }
    const first = await call('/v1/embeddings', user.key, body, { 'x-gateway-cache-ttl': '60' })
    assert.equal(first.status, 200)
    assert.equal(first.headers.get('x-gateway-cache'), 'MISS')
    const second = await call('/v1/embeddings', user.key, body, { 'x-gateway-cache-ttl': '60' })
    assert.equal(second.headers.get('x-gateway-cache'), 'HIT')
    assert.equal(second.text, first.text)
    const gemini = { content: { parts: [{ text: 'one' }] } }
    const g1 = await call('/v1beta/models/cache-model:embedContent', user.key, gemini, { 'x-gateway-cache-ttl': '60', 'x-goog-api-key': user.key })
    assert.equal(g1.status, 200)
    const g2 = await call('/v1beta/models/cache-model:embedContent', user.key, gemini, { 'x-gateway-cache-ttl': '60', 'x-goog-api-key': user.key })
    assert.equal(g2.headers.get('x-gateway-cache'), 'HIT')
    assert.equal(g2.text, g1.text)
    assert.equal(received() - before, 2)
  })

  test('refresh calls the provider and stores the new answer; an expired entry is a miss', async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    await call('/v1/chat/completions', user.key, chat('refresh me'), { 'x-gateway-cache-ttl': '1' })
    const before = received()
    const refreshed = await call('/v1/chat/completions', user.key, chat('refresh me'), { 'x-gateway-cache-ttl': '1', 'x-gateway-cache-refresh': 'true' })
    assert.equal(refreshed.headers.get('x-gateway-cache'), 'REFRESH')
    assert.equal(received() - before, 1)
    const hit = await call('/v1/chat/completions', user.key, chat('refresh me'), { 'x-gateway-cache-ttl': '1' })
    assert.equal(hit.headers.get('x-gateway-cache'), 'HIT')
    await new Promise((r) => setTimeout(r, 1100))
    const expired = await call('/v1/chat/completions', user.key, chat('refresh me'), { 'x-gateway-cache-ttl': '1' })
    assert.equal(expired.headers.get('x-gateway-cache'), 'MISS')
    assert.equal(received() - before, 2)
  })

  test('errors are never stored', async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    const before = received()
    const failing = await call('/v1/chat/completions', user.key, chat('fail once', { mock: { status: 400 } }), { 'x-gateway-cache-ttl': '60' })
    assert.equal(failing.status, 400)
    const again = await call('/v1/chat/completions', user.key, chat('fail once', { mock: { status: 400 } }), { 'x-gateway-cache-ttl': '60' })
    assert.equal(again.status, 400)
    assert.equal(received() - before, 2)
  })

  test('a hit needs no money: an empty balance still gets a stored answer, but not a new one, nor a model its key may not use', async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    const first = await call('/v1/chat/completions', user.key, chat('paid once'), { 'x-gateway-cache-ttl': '60' })
    assert.equal(first.status, 200)
    const embedded = await call('/v1/embeddings', user.key, { model: 'cache-model', input: 'paid once' }, { 'x-gateway-cache-ttl': '60' })
    assert.equal(embedded.status, 200)
    const { balance } = await balanceAndLedger(user.userId)
    await postLedgerEntry({ userRef: user.email, kind: 'adjustment', amount: `-${balance}` })
    await refreshCaches()
    assert.equal(Number((await balanceAndLedger(user.userId)).balance), 0)

    const hit = await call('/v1/chat/completions', user.key, chat('paid once'), { 'x-gateway-cache-ttl': '60' })
    assert.equal(hit.status, 200)
    assert.equal(hit.headers.get('x-gateway-cache'), 'HIT')
    assert.equal(hit.text, first.text)
    const embeddingHit = await call('/v1/embeddings', user.key, { model: 'cache-model', input: 'paid once' }, { 'x-gateway-cache-ttl': '60' })
    assert.equal(embeddingHit.status, 200)
    assert.equal(embeddingHit.headers.get('x-gateway-cache'), 'HIT')
    const miss = await call('/v1/chat/completions', user.key, chat('never paid'), { 'x-gateway-cache-ttl': '60' })
    assert.equal(miss.status, 402)
    const refresh = await call('/v1/chat/completions', user.key, chat('paid once'), { 'x-gateway-cache-ttl': '60', 'x-gateway-cache-refresh': 'true' })
    assert.equal(refresh.status, 402, 'a refresh calls the provider, so it needs money')

    // Another key of the same user, kept to other models: the cache does not widen what a key may use.
    const { key: narrow } = await createApiKey({ userRef: user.email, models: ['other-*'] })
    await refreshCaches()
    const refused = await call('/v1/chat/completions', narrow, chat('paid once'), { 'x-gateway-cache-ttl': '60' })
    assert.equal(refused.status, 403)
    assert.equal(JSON.parse(refused.text).error.code, 'model_not_allowed')

    const rows = await usageRows(user.userId)
    const hits = rows.filter((r: any) => r.cache_hit)
    assert.lengthOf(hits, 2)
    for (const row of hits) assert.equal(Number(row.cost), 0)
    assert.equal(Number((await balanceAndLedger(user.userId)).balance), 0)
  })

  test('LiteLLM\'s cache controls in the body: ttl stores and hits, no-cache refreshes, no-store never stores; the field never reaches the provider', async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    const before = received()
    const sentUpstream = () => JSON.parse(mock.lastRequest()!.body)
    const first = await call('/v1/chat/completions', user.key, chat('litellm cache', { cache: { ttl: 60 } }))
    assert.equal(first.status, 200, first.text)
    assert.equal(first.headers.get('x-gateway-cache'), 'MISS')
    assert.notProperty(sentUpstream(), 'cache', 'OpenAI refuses an unknown argument: LiteLLM never sends it on')
    const hit = await call('/v1/chat/completions', user.key, chat('litellm cache', { cache: { 's-maxage': 30 } }))
    assert.equal(hit.headers.get('x-gateway-cache'), 'HIT', 'keyed on the body without its cache controls')
    assert.equal(hit.text, first.text)
    const refreshed = await call('/v1/chat/completions', user.key, chat('litellm cache', { cache: { ttl: 60, 'no-cache': true } }))
    assert.equal(refreshed.headers.get('x-gateway-cache'), 'REFRESH')
    assert.equal(received() - before, 2)

    const noStore = () => call('/v1/chat/completions', user.key, chat('not kept', { cache: { ttl: 60, 'no-store': true } }))
    assert.equal((await noStore()).headers.get('x-gateway-cache'), 'MISS')
    assert.equal((await noStore()).headers.get('x-gateway-cache'), 'MISS', 'nothing was stored')
    assert.equal(received() - before, 4)

    // Controls without a number of seconds ask nothing of a cache that is off unless asked: a plain call, field dropped.
    const plain = await call('/v1/chat/completions', user.key, chat('plain', { cache: { 'no-cache': true } }))
    assert.equal(plain.status, 200)
    assert.isNull(plain.headers.get('x-gateway-cache'))
    assert.notProperty(sentUpstream(), 'cache')

    // A relayed body (embeddings: the client's bytes go up) is cleaned too, and its controls still read.
    const embed = { model: 'cache-model', input: ['litellm'], cache: { ttl: 60 } }
    const e1 = await call('/v1/embeddings', user.key, embed)
    assert.equal(e1.headers.get('x-gateway-cache'), 'MISS')
    assert.notProperty(sentUpstream(), 'cache')
    assert.equal((await call('/v1/embeddings', user.key, embed)).headers.get('x-gateway-cache'), 'HIT')

    for (const cache of ['yes', { ttl: -1 }, { ttl: 1.5 }, { ttl: '60' }, { ttl: 10_000_000 }]) {
      const bad = await call('/v1/chat/completions', user.key, chat('bad', { cache }))
      assert.equal(bad.status, 400, JSON.stringify(cache))
      assert.equal(JSON.parse(bad.text).error.code, 'invalid_cache_ttl')
    }
  })

  test('a bad TTL is the client\'s 400 in its own format', async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    const openai = await call('/v1/chat/completions', user.key, chat('x'), { 'x-gateway-cache-ttl': 'soon' })
    assert.equal(openai.status, 400)
    const error = JSON.parse(openai.text).error
    assert.equal(error.code, 'invalid_cache_ttl')
    assert.include(error.message, 'whole number of seconds from 0 to 86400')
    const anthropic = await call('/v1/messages', user.key, messages('x'), { 'x-gateway-cache-ttl': '999999999' })
    assert.equal(anthropic.status, 400)
    assert.equal(JSON.parse(anthropic.text).type, 'error')
    // 0 turns the cache off for the request: no header, no entry.
    const zero = await call('/v1/chat/completions', user.key, chat('zero'), { 'x-gateway-cache-ttl': '0' })
    assert.equal(zero.status, 200)
    assert.isNull(zero.headers.get('x-gateway-cache'))
  })
})
