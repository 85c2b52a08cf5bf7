import { test } from '@japa/runner'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { corsPolicy, withCors } from '#gateway/http/cors'
import { baseUrl, post, resetDatabase, seedChannel, seedUser, startMock, usageRows, type SeededUser } from '#tests/helpers'

const hello = [{ role: 'user', content: 'hi' }]
const ORIGIN = 'https://chat.example.com'

test.group('CORS for browser clients of the API', (group) => {
  let user: SeededUser
  group.setup(async () => {
    await resetDatabase()
    const mock = await startMock()
    await seedChannel({ name: 'cors', baseUrl: mock.url, models: ['*'] })
    user = await seedUser()
    return () => mock.stop()
  })

  test('a preflight is answered before authentication, with what the browser asked to send', async ({ assert }) => {
    const before = (await usageRows(user.userId)).length
    const response = await fetch(`${baseUrl()}/v1/chat/completions`, {
      method: 'OPTIONS',
      headers: { 'origin': ORIGIN, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type, x-stainless-os' },
    })
    assert.equal(response.status, 204)
    assert.equal(response.headers.get('access-control-allow-origin'), '*')
    assert.include(response.headers.get('access-control-allow-methods')!, 'POST')
    assert.equal(response.headers.get('access-control-allow-headers'), 'authorization, content-type, x-stainless-os')
    assert.equal(response.headers.get('access-control-max-age'), '86400')
    assert.isNull(response.headers.get('access-control-allow-credentials'))
    assert.lengthOf(await usageRows(user.userId), before, 'a preflight is no request')
  })

  test('answers, streams and errors carry the headers a browser needs to read them', async ({ assert }) => {
    const auth = { authorization: `Bearer ${user.key}`, origin: ORIGIN }
    const answer = await post('/v1/chat/completions', { model: 'gpt-4o-mini', messages: hello }, auth)
    assert.equal(answer.status, 200)
    assert.equal(answer.headers.get('access-control-allow-origin'), '*')
    assert.include(answer.headers.get('access-control-expose-headers')!, 'x-request-id')
    assert.isNotNull(answer.headers.get('x-request-id'))
    await answer.text()

    const stream = await post('/v1/chat/completions', { model: 'gpt-4o-mini', messages: hello, stream: true }, auth)
    assert.equal(stream.headers.get('access-control-allow-origin'), '*')
    assert.include(await stream.text(), '[DONE]')

    const refused = await post('/v1/chat/completions', { model: 'gpt-4o-mini', messages: hello }, { authorization: 'Bearer nope', origin: ORIGIN })
    assert.equal(refused.status, 401)
    assert.equal(refused.headers.get('access-control-allow-origin'), '*', 'the page can read why it was refused')

    // Routes the framework serves (the model list, Gemini's paths) too.
    const models = await fetch(`${baseUrl()}/v1/models`, { headers: auth })
    assert.equal(models.status, 200)
    assert.equal(models.headers.get('access-control-allow-origin'), '*')
    const gemini = await fetch(`${baseUrl()}/v1beta/models`, { headers: { 'x-goog-api-key': user.key, 'origin': ORIGIN } })
    assert.equal(gemini.headers.get('access-control-allow-origin'), '*')
  })

  test('no Origin, no CORS headers; and the pages (cookie sessions) never get them', async ({ assert }) => {
    const answer = await post('/v1/chat/completions', { model: 'gpt-4o-mini', messages: hello }, { authorization: `Bearer ${user.key}` })
    assert.isNull(answer.headers.get('access-control-allow-origin'))
    await answer.text()
    const login = await fetch(`${baseUrl()}/login`, { headers: { origin: ORIGIN } })
    assert.isNull(login.headers.get('access-control-allow-origin'))
    const preflight = await fetch(`${baseUrl()}/login`, { method: 'OPTIONS', headers: { 'origin': ORIGIN, 'access-control-request-method': 'POST' } })
    assert.notEqual(preflight.status, 204)
    assert.isNull(preflight.headers.get('access-control-allow-origin'))
  })

  test('CORS_ORIGINS: a list allows only its origins (echoed, varying by Origin); off allows none', async ({ assert }) => {
    const seen = { n: 0 }
    const handler = (_req: http.IncomingMessage, res: http.ServerResponse) => {
      seen.n++
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end('{}')
    }
    const listed = corsPolicy(' https://a.example/ , https://B.example ')
    const server = http.createServer(withCors(handler, listed))
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/models`
    try {
      const allowed = await fetch(url, { headers: { origin: 'https://b.example' } })
      assert.equal(allowed.headers.get('access-control-allow-origin'), 'https://b.example')
      assert.equal(allowed.headers.get('vary'), 'Origin')
      const other = await fetch(url, { headers: { origin: 'https://evil.example' } })
      assert.isNull(other.headers.get('access-control-allow-origin'))
      const preflight = await fetch(url, { method: 'OPTIONS', headers: { 'origin': 'https://evil.example', 'access-control-request-method': 'POST' } })
      assert.isNull(preflight.headers.get('access-control-allow-origin'))
      assert.equal(seen.n, 3, 'a refused origin is handled as if no CORS were asked')
    } finally {
      server.close()
    }
    assert.isNull(corsPolicy('off'))
    assert.deepEqual(corsPolicy(undefined), { origins: null })
  })
})
