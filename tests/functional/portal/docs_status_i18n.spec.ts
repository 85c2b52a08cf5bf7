import { test } from '@japa/runner'
import { createUser } from '#actions/create_user'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { baseUrl, post, resetDatabase, seedChannel, seedUser, startMock, refreshCaches, usageRows } from '#tests/helpers'
import { PageClient, htmlText } from '#tests/page_client'
import { resetChannelStatusMemo } from '#services/channel_status'
import { GATEWAY_ERRORS } from '#services/gateway_errors'

test.group('/docs, /status and languages', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'primary-mock', baseUrl: mock.url, models: ['mock-chat', 'mock-large'] })
    return () => mock.stop()
  })

  test('/docs: base URL from the request, every header style, every endpoint, the error table, tool guides', async ({ assert }) => {
    const page = await new PageClient().get('/docs')
    assert.equal(page.status, 200)
    const text = htmlText(page.body)
    assert.include(text, `http://127.0.0.1:${process.env.PORT}/v1`)
    for (const header of ['Authorization: Bearer', 'x-api-key:', 'x-goog-api-key:', '?key=']) assert.include(text, header)
    for (const id of ['chat', 'stream', 'responses', 'messages', 'gemini', 'embeddings', 'images', 'models', 'usage', 'balance']) {
      assert.include(page.body, `id="endpoint-${id}"`)
      for (const lang of ['curl', 'python', 'javascript']) assert.include(page.body, `data-endpoint="${id}" data-lang="${lang}"`)
    }
    for (const { code } of GATEWAY_ERRORS) assert.include(page.body, `id="error-${code}"`)
    // The newest endpoints, listed with what they do (the Files and Batch API, Message Batches, compaction, stored responses, LiteLLM's).
    for (const id of ['stored', 'compact', 'batches', 'message-batches', 'customers', 'global-spend']) assert.include(page.body, `id="more-${id}"`)
    for (const path of ['previous_response_id', 'GET /v1/responses/{id}', 'DELETE /v1/responses/{id}', '/v1/responses/{id}/input_items', 'POST /v1/responses/compact', 'POST /v1/files', 'POST /v1/batches', 'POST /v1/messages/batches', '/customer/new', '/customer/list', 'GET /global/spend/logs', 'GET /global/spend/report']) {
      assert.include(text, path)
    }
    assert.notInclude(text, 'previous_response_id is not supported')
    assert.include(text, 'item_reference')
    assert.include(text, 'Retry-After')
    for (const tool of ['Claude Code', 'Codex CLI', 'Gemini CLI', 'Cursor', 'OpenCode']) assert.include(text, tool)
    assert.include(page.body, 'data-status-url="/api/status"')
  })

  test("/docs: the authentication table lists every header the gateway reads (Azure's api-key, LiteLLM's too), each one working, in every language", async ({ assert }) => {
    const user = await seedUser()
    const languages: Array<[string, string, string]> = [
      ['en', 'Azure OpenAI clients', 'LiteLLM proxy'],
      ['vi', 'Client Azure OpenAI', 'proxy LiteLLM'],
      ['zh-CN', 'Azure OpenAI 客户端', 'LiteLLM 代理'],
    ]
    for (const [language, azure, litellm] of languages) {
      const page = await new PageClient({ 'accept-language': language }).get('/docs')
      const table = page.body.slice(page.body.indexOf('id="auth-title"'), page.body.indexOf('</table>', page.body.indexOf('id="auth-title"')))
      const headers = [...table.matchAll(/<code>([^<]+)<\/code>/g)].map((m) => m[1])
      assert.deepEqual(headers, ['Authorization: Bearer sk-…', 'x-api-key: sk-…', 'x-goog-api-key: sk-…', '?key=sk-…', 'api-key: sk-…', 'x-litellm-api-key: sk-…'], language)
      const text = htmlText(table)
      assert.include(text, azure, language)
      assert.include(text, litellm, language)
      if (language !== 'en') continue
      // Each way the table names carries the key.
      for (const header of headers) {
        const withKey = header.replace('sk-…', user.key)
        const response = withKey.startsWith('?')
          ? await fetch(`${baseUrl()}/v1/models${withKey}`)
          : await fetch(`${baseUrl()}/v1/models`, { headers: { [withKey.slice(0, withKey.indexOf(':'))]: withKey.slice(withKey.indexOf(':') + 1).trim() } })
        assert.equal(response.status, 200, header)
      }
    }
  })

  test('/docs: model tags are the public catalogue; ?model= selects one and rewrites the snippets', async ({ assert }) => {
    const page = await new PageClient().get('/docs?model=mock-large')
    assert.include(page.body, 'data-model="mock-chat"')
    assert.include(page.body, 'data-model="mock-large" aria-pressed="true"')
    const chat = /data-endpoint="chat" data-lang="curl" data-template="([^"]+)">([^<]+)</.exec(page.body)!
    assert.include(htmlText(chat[1]), '__MODEL__', 'the template keeps the marker for the tags')
    assert.include(htmlText(chat[2]), '"model": "mock-large"')
    const unknown = await new PageClient().get('/docs?model=not-served')
    assert.include(unknown.body, '<code data-selected-model>mock-chat</code>')
  })

  test('Accept-Language picks Vietnamese; the picker cookie overrides it and is remembered', async ({ assert }) => {
    const vi = await new PageClient({ 'accept-language': 'vi-VN,vi;q=0.9,en;q=0.5' }).get('/docs')
    assert.include(vi.body, '<html lang="vi">')
    assert.include(htmlText(vi.body), 'Tài liệu API')
    const en = await new PageClient({ 'accept-language': 'fr-FR' }).get('/docs')
    assert.include(htmlText(en.body), 'API documentation')

    const client = new PageClient({ 'accept-language': 'en-US' })
    const switched = await client.get('/lang/vi', { referer: `http://127.0.0.1:${process.env.PORT}/status` })
    assert.equal(switched.status, 302)
    assert.equal(switched.location, '/status')
    assert.equal(client.cookies.get('locale'), 'vi')
    const status = await client.get('/status')
    assert.include(htmlText(status.body), 'Trạng thái hệ thống')
    const login = await client.get('/login')
    assert.include(htmlText(login.body), 'Đăng nhập')
    const register = await client.get('/register')
    assert.include(htmlText(register.body), 'Tạo tài khoản')
    await client.get('/lang/xx')
    assert.equal(client.cookies.get('locale'), 'vi', 'an unknown language is ignored')
    const offsite = await client.get('/lang/en', { referer: 'https://evil.example/phish' })
    assert.equal(offsite.location, '/docs', 'never redirects off the site')
  })

  test('Accept-Language: zh-CN renders login, registration, /docs and the portal in Simplified Chinese', async ({ assert }) => {
    const header = { 'accept-language': 'zh-CN,zh;q=0.9' }
    const login = await new PageClient(header).get('/login')
    assert.include(login.body, '<html lang="zh-CN">')
    assert.include(htmlText(login.body), '登录')
    assert.include(htmlText(login.body), '还没有账号？')
    const register = await new PageClient(header).get('/register')
    assert.include(htmlText(register.body), '注册账号')
    assert.include(htmlText(register.body), '至少 8 个字符。')
    const docs = await new PageClient(header).get('/docs')
    const docsText = htmlText(docs.body)
    assert.include(docsText, 'API 文档')
    assert.include(docsText, '快速开始')
    assert.include(docsText, '速率限制与重试')
    // Technical terms, headers, paths and code stay as they are
    for (const kept of ['Authorization: Bearer', 'x-api-key:', 'Retry-After', '/v1/messages', 'Claude Code']) assert.include(docsText, kept)
    assert.include(docsText, `http://127.0.0.1:${process.env.PORT}/v1`)
    for (const id of ['chat', 'messages', 'balance']) assert.include(docs.body, `data-endpoint="${id}" data-lang="curl"`)
    // Other Chinese browsers map to it too; Vietnamese and English are unaffected
    for (const other of ['zh', 'zh-Hans', 'zh-SG']) {
      assert.include((await new PageClient({ 'accept-language': other }).get('/docs')).body, '<html lang="zh-CN">', other)
    }
    assert.include((await new PageClient({ 'accept-language': 'vi' }).get('/docs')).body, '<html lang="vi">')

    const seeded = await seedUser({ balance: '1234.5' })
    const client = new PageClient(header)
    await client.login(seeded.email)
    const billing = htmlText((await client.get('/dashboard/billing')).body)
    for (const text of ['账单', '余额', '收支明细', '兑换码', '充值']) assert.include(billing, text)
    assert.include(billing, 'US$1,234.50')
    assert.notInclude(billing, 'Billing')
    assert.notInclude(billing, 'translation missing')
    const overview = htmlText((await client.get('/dashboard')).body)
    assert.include(overview, '概览')
    assert.include(overview, '本月消费')
    const keys = htmlText((await client.get('/dashboard/keys')).body)
    assert.include(keys, 'API 密钥')
    assert.include(keys, '创建密钥')
    const usage = htmlText((await client.get('/dashboard/usage')).body)
    assert.include(usage, '用量日志')
    assert.include(htmlText((await client.get('/dashboard/models')).body), '模型')
    assert.include(htmlText((await client.get('/status')).body), '系统状态')
    // The panel's 403 page for a user follows the language too
    const forbidden = await client.get('/admin')
    assert.equal(forbidden.status, 403)
    assert.include(forbidden.body, '<html lang="zh-CN">')
    assert.include(htmlText(forbidden.body), '无权访问')
  })

  test('the picker lists 简体中文; /lang/zh switches to it and is remembered over Accept-Language', async ({ assert }) => {
    const client = new PageClient({ 'accept-language': 'en-US' })
    const docs = await client.get('/docs')
    assert.include(docs.body, 'href="/lang/zh" lang="zh-CN" hreflang="zh-CN"')
    assert.match(docs.body, /<a href="\/lang\/zh"[^>]*>简体中文<\/a>/)
    const switched = await client.get('/lang/zh', { referer: `http://127.0.0.1:${process.env.PORT}/docs` })
    assert.equal(switched.status, 302)
    assert.equal(switched.location, '/docs')
    assert.equal(client.cookies.get('locale'), 'zh')
    const page = await client.get('/docs')
    assert.include(page.body, '<html lang="zh-CN">')
    assert.include(htmlText(page.body), 'API 文档')
    assert.match(page.body, /<a href="\/lang\/zh"[^>]*aria-current="true"[^>]*>简体中文<\/a>/)
    assert.include(htmlText((await client.get('/status')).body), '系统状态')
    await client.get('/lang/en')
    assert.include(htmlText((await client.get('/docs')).body), 'API documentation')
  })

  test('numbers and money follow the language on the portal', async ({ assert }) => {
    const seeded = await seedUser({ balance: '1234.5' })
    const client = new PageClient()
    await client.login(seeded.email)
    let page = await client.get('/dashboard/billing')
    assert.include(htmlText(page.body), '$1,234.50')
    await client.get('/lang/vi')
    page = await client.get('/dashboard/billing')
    assert.match(htmlText(page.body), /1\.234,50\sUS\$/)
    assert.include(htmlText(page.body), 'Sổ cái')
    await client.get('/lang/zh')
    page = await client.get('/dashboard/billing')
    assert.include(htmlText(page.body), 'US$1,234.50')
    assert.include(htmlText(page.body), '收支明细')
  })

  test('/status: version, uptime, database latency, per-channel health; upstream URLs only for admins', async ({ assert }) => {
    const seeded = await seedUser()
    for (let i = 0; i < 3; i++) await post('/v1/chat/completions', { model: 'mock-chat', messages: [{ role: 'user', content: 'x' }] }, { authorization: `Bearer ${seeded.key}` })
    await post('/v1/chat/completions', { model: 'mock-chat', messages: [{ role: 'user', content: 'x' }], mock: { status: 500 } }, { authorization: `Bearer ${seeded.key}` })
    await usageRows(seeded.userId)
    resetChannelStatusMemo()
    const anonymous = await new PageClient().get('/status')
    assert.equal(anonymous.status, 200)
    const text = htmlText(anonymous.body)
    assert.include(text, 'Version')
    assert.match(text, /Database\s*[\d.,]+ ms/)
    assert.include(anonymous.body, 'data-channel="primary-mock"')
    assert.include(text, '75%')
    assert.notInclude(anonymous.body, mock.url, 'no upstream URL for anonymous visitors')
    assert.notInclude(anonymous.body, 'upstream-secret')

    await createUser({ email: 'status-admin@test.local', password: 'password123', role: 'admin' })
    await refreshCaches()
    const admin = new PageClient()
    await admin.login('status-admin@test.local')
    const adminPage = await admin.get('/status')
    assert.include(adminPage.body, mock.url)
    assert.notInclude(adminPage.body, 'upstream-secret')
  })
})
