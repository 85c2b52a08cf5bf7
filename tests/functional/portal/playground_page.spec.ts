import { test } from '@japa/runner'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { baseUrl, post, resetDatabase, seedChannel, seedUser, startMock, usageRows } from '#tests/helpers'
import { PageClient } from '#tests/page_client'

/**
 * The portal's Playground page (/dashboard/playground): signed-in only, the
 * chat models of the user's plan in its picker, the pages' strict CSP (its
 * script a file of this site, no inline script without the nonce, no inline
 * handler or style), a key field nothing can submit, and the link from an
 * answer's x-request-id to the user's usage log entry. The chat itself runs
 * in the browser: tests/browser/playground.spec.ts.
 */
const nonceOf = (csp: string | null) => /script-src 'self' 'nonce-([^']+)'/.exec(csp ?? '')?.[1]

/** The value attributes of the model picker's options, in order. */
const options = (html: string) => {
  const select = /<select id="pg-model">([\s\S]*?)<\/select>/.exec(html)?.[1] ?? ''
  return [...select.matchAll(/<option value="([^"]*)"/g)].map((m) => m[1])
}

test.group('Portal: Playground page', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'mock', baseUrl: mock.url, models: ['mock-chat', 'mock-mini', 'mock-embed-small', 'other-chat'] })
    return () => mock.stop()
  })

  test('needs a session: a visitor is sent to /login', async ({ assert }) => {
    const page = await new PageClient().get('/dashboard/playground')
    assert.equal(page.status, 302)
    assert.match(page.location ?? '', /^\/login/)
  })

  test('lists the chat models the plan allows; another name can be typed', async ({ assert }) => {
    const seeded = await seedUser({ plan: { name: 'mock-only', models: ['mock-*'] } })
    const client = new PageClient()
    await client.login(seeded.email)
    const page = await client.get('/dashboard/playground')
    assert.equal(page.status, 200)
    // The plan's chat models, then "Other" (free text); not another plan's model, not an embeddings model.
    assert.deepEqual(options(page.body), ['mock-chat', 'mock-mini', ''])
    assert.include(page.body, 'id="pg-model-other"')
    assert.include(page.body, 'aria-current="page">Playground</a>')

    // A plan allowing everything lists every chat model served.
    const open = await seedUser()
    const other = new PageClient()
    await other.login(open.email)
    assert.deepEqual(options((await other.get('/dashboard/playground')).body), ['mock-chat', 'mock-mini', 'other-chat', ''])
    // A plan whose models nothing serves: only "Other", its name field shown, and a note.
    const none = await seedUser({ plan: { name: 'unserved', models: ['nothing-*'] } })
    const bare = new PageClient()
    await bare.login(none.email)
    const empty = (await bare.get('/dashboard/playground')).body
    assert.deepEqual(options(empty), [''])
    assert.match(empty, /<option value="" selected>/)
    assert.notMatch(/<input id="pg-model-other"[^>]*>/.exec(empty)?.[0] ?? '', /hidden/)
    assert.include(empty, 'No chat model is listed by name for your plan')
    // Beside Models in every portal page's nav.
    const models = await other.get('/dashboard/models')
    assert.match(models.body, /href="\/dashboard\/models"[^>]*>Models<\/a><\/li>\s*<li><a href="\/dashboard\/playground"/)
  })

  test('strict CSP: the script is a file of this site, no inline script without the nonce, no inline handler or style', async ({ assert }) => {
    const seeded = await seedUser()
    const client = new PageClient()
    await client.login(seeded.email)
    const page = await client.get('/dashboard/playground')
    const csp = page.headers.get('content-security-policy') ?? ''
    assert.include(csp, "script-src-attr 'none'")
    assert.include(csp, "default-src 'self'")
    assert.notMatch(csp, /unsafe/)
    const nonce = nonceOf(csp)
    assert.match(nonce ?? '', /^[\w-]{16,}$/)
    for (const tag of page.body.match(/<script(?![^>]*\ssrc=)[^>]*>/g) ?? []) {
      if (!tag.includes('application/json')) assert.include(tag, `nonce="${nonce}"`)
    }
    assert.include(page.body, '<script src="/assets/playground.js" defer></script>')
    assert.notMatch(page.body, /\son[a-z]+\s*=/i, 'no inline event handler')
    assert.notMatch(page.body, /\sstyle\s*=/i, 'no style attribute')

    const script = await fetch(`${baseUrl()}/assets/playground.js`)
    assert.equal(script.status, 200)
    assert.match(script.headers.get('content-type') ?? '', /javascript/)
    const source = await script.text()
    assert.include(source, "fetch('/v1/chat/completions'")
    // A model's answer goes in as text, never as markup.
    assert.notMatch(source, /innerHTML|outerHTML|insertAdjacentHTML|document\.write/)
  })

  test('the key field has no name and sits in no form: it cannot be posted to a page route', async ({ assert }) => {
    const seeded = await seedUser()
    const client = new PageClient()
    await client.login(seeded.email)
    const page = await client.get('/dashboard/playground')
    const keyField = /<input id="pg-key"[^>]*>/.exec(page.body)?.[0] ?? ''
    assert.include(keyField, 'type="password"')
    assert.notInclude(keyField, 'name=')
    // Every form on the page closes before the key field, or opens after it.
    const before = page.body.slice(0, page.body.indexOf('id="pg-key"'))
    assert.equal((before.match(/<form\b/g) ?? []).length, (before.match(/<\/form>/g) ?? []).length)
    // The composer's fields have no names either (without the script, submitting sends nothing).
    const composer = /<form id="pg-composer"[\s\S]*?<\/form>/.exec(page.body)?.[0] ?? ''
    assert.notMatch(composer, /\sname=/)
    assert.include(page.body, 'href="/dashboard/keys"')
    assert.notInclude(page.body, seeded.key)
  })

  test('in Vietnamese and Chinese', async ({ assert }) => {
    const seeded = await seedUser()
    for (const [language, heading] of [
      ['vi', 'Thử mô hình'],
      ['zh-CN', '操练场'],
    ]) {
      const client = new PageClient({ 'accept-language': language })
      await client.login(seeded.email)
      const page = await client.get('/dashboard/playground')
      assert.include(page.body, `<h1>${heading}</h1>`)
      assert.notInclude(page.body, 'translation missing')
    }
  })

  test("an answer's x-request-id opens the user's own usage entry; another user's or an unknown id is a 404", async ({ assert }) => {
    const seeded = await seedUser()
    const answer = await post('/v1/chat/completions', { model: 'mock-chat', messages: [{ role: 'user', content: 'hi' }] }, { authorization: `Bearer ${seeded.key}` })
    assert.equal(answer.status, 200)
    const requestId = answer.headers.get('x-request-id')!
    const [row] = await usageRows(seeded.userId)
    assert.equal(row.request_id, requestId)

    const client = new PageClient()
    await client.login(seeded.email)
    const found = await client.get(`/dashboard/usage/request/${requestId}`)
    assert.equal(found.status, 302)
    assert.equal(found.location, `/dashboard/usage/${row.id}`)
    // Any case, as a user may paste it.
    assert.equal((await client.get(`/dashboard/usage/request/${requestId.toUpperCase()}`)).location, `/dashboard/usage/${row.id}`)
    const detail = await client.get(found.location!)
    assert.include(detail.body, requestId)

    const stranger = await seedUser()
    const strangerClient = new PageClient()
    await strangerClient.login(stranger.email)
    assert.equal((await strangerClient.get(`/dashboard/usage/request/${requestId}`)).status, 404)
    assert.equal((await client.get('/dashboard/usage/request/01937b2e-0000-7000-8000-000000000000')).status, 404)
    assert.equal((await client.get('/dashboard/usage/request/not-an-id')).status, 404)
  })
})
