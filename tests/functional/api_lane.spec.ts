import { test } from '@japa/runner'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import app from '@adonisjs/core/services/app'
import { withApiLane } from '#gateway/http/api_lane'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { baseUrl, resetDatabase, seedChannel, seedUser, startMock, usageRows } from '#tests/helpers'

/**
 * The API lane (app/gateway/http/api_lane.ts) serves the /v1 POST endpoints
 * without the router. The suite's server runs it; a second server here runs
 * the same app with the lane off, and every answer must be the same.
 */
async function listen(handler: (req: IncomingMessage, res: ServerResponse) => unknown): Promise<{ server: Server; url: string }> {
  const server = createServer(handler)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }
}

async function adonisHandler() {
  const server = await app.container.make('server')
  return server.handle.bind(server) as (req: IncomingMessage, res: ServerResponse) => unknown
}

/** What a client can see of an answer, ids and timestamps aside. */
async function seen(response: Response) {
  const text = await response.text()
  const normalised = text.replace(/"(id|created|created_at)": ?("[^"]*"|\d+)/g, '"$1":_').replace(/chatcmpl-[\w-]+/g, 'chatcmpl-_')
  return {
    status: response.status,
    contentType: response.headers.get('content-type'),
    retryAfter: response.headers.get('retry-after'),
    body: normalised,
  }
}

test.group('API lane: the same answers as the router', (group) => {
  let mock: MockUpstream
  let routed: { server: Server; url: string }

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'mock', baseUrl: mock.url, models: ['mock-*'] })
    routed = await listen(withApiLane(await adonisHandler(), false))
    return async () => {
      await new Promise((resolve) => routed.server.close(resolve))
      await mock.stop()
    }
  })

  test('answers, streams and errors in every wire format match, and both are metered', async ({ assert }) => {
    const user = await seedUser()
    const auth = { authorization: `Bearer ${user.key}`, 'content-type': 'application/json' }
    const hello = [{ role: 'user', content: 'hi' }]
    const cases: Array<{ path: string; headers: Record<string, string>; body: string }> = [
      { path: '/v1/chat/completions', headers: auth, body: JSON.stringify({ model: 'mock-a', messages: hello }) },
      { path: '/v1/chat/completions', headers: auth, body: JSON.stringify({ model: 'mock-a', messages: hello, stream: true }) },
      { path: '/v1/messages?beta=true', headers: auth, body: JSON.stringify({ model: 'mock-a', max_tokens: 16, messages: hello, stream: true }) },
      { path: '/v1/responses', headers: auth, body: JSON.stringify({ model: 'mock-a', input: 'hi' }) },
      { path: '/v1/chat/completions', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'mock-a', messages: hello }) },
      { path: '/v1/messages', headers: auth, body: '{"model":' },
      { path: '/v1/chat/completions', headers: auth, body: JSON.stringify({ model: 'nothing-serves-this', messages: hello }) },
      { path: '/v1/embeddings', headers: auth, body: JSON.stringify({ input: 'x' }) },
      { path: '/v1/completions', headers: auth, body: JSON.stringify({ model: 'mock-a', prompt: 'def f(', suffix: 'return 1' }) },
      { path: '/v1/completions', headers: auth, body: JSON.stringify({ model: 'mock-a', prompt: 'p', stream: true }) },
      { path: '/v1/completions', headers: auth, body: JSON.stringify({ model: 'mock-a', prompt: [{}] }) },
      { path: '/v1/rerank', headers: auth, body: JSON.stringify({ model: 'mock-rerank', query: 'q', documents: ['a', { text: 'b' }] }) },
      { path: '/v2/rerank', headers: auth, body: JSON.stringify({ model: 'mock-rerank', query: 'q', documents: [] }) },
      { path: '/rerank', headers: auth, body: JSON.stringify({ model: 'mock-rerank', query: 'q', documents: ['a'], top_n: 1 }) },
      { path: '/v1/moderations', headers: auth, body: JSON.stringify({ model: 'mock-moderation', input: 'hello' }) },
      // Codex's compaction: v1 at its own paths (emulated on this chat channel), v2 through /v1/responses
      { path: '/v1/responses/compact', headers: auth, body: JSON.stringify({ model: 'mock-a', input: [{ role: 'user', content: 'hi' }] }) },
      { path: '/responses/compact', headers: auth, body: JSON.stringify({ model: 'mock-a', input: [{ role: 'user', content: 'hi' }] }) },
      { path: '/openai/v1/responses/compact', headers: auth, body: JSON.stringify({ model: 'mock-a', input: [{ role: 'user', content: 'hi' }] }) },
      { path: '/v1/responses/compact', headers: auth, body: JSON.stringify({ model: 'mock-a', input: 'hi' }) },
      { path: '/v1/responses', headers: auth, body: JSON.stringify({ model: 'mock-a', stream: true, input: [{ role: 'user', content: 'hi' }, { type: 'compaction_trigger' }] }) },
    ]
    const statuses: number[] = []
    for (const { path, headers, body } of cases) {
      const viaLane = await seen(await fetch(`${baseUrl()}${path}`, { method: 'POST', headers, body }))
      const viaRouter = await seen(await fetch(`${routed.url}${path}`, { method: 'POST', headers, body }))
      assert.deepEqual(viaLane, viaRouter, `${path} ${body}`)
      statuses.push(viaLane.status)
    }
    assert.deepEqual(statuses, [200, 200, 200, 200, 401, 400, 404, 400, 200, 200, 400, 200, 400, 200, 200, 200, 200, 200, 400, 200])
    // Every authenticated request of each server has its usage row.
    assert.lengthOf(await usageRows(user.userId), 2 * 19)
  })

  test('only the fixed-path POST endpoints take the lane; everything else reaches the router', async ({ assert }) => {
    const reached: string[] = []
    const lane = withApiLane((req, res) => {
      reached.push(`${req.method} ${req.url}`)
      res.end()
    })
    const { server, url } = await listen(lane)
    try {
      const user = await seedUser()
      const auth = { authorization: `Bearer ${user.key}`, 'content-type': 'application/json' }
      const chat = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: auth, body: JSON.stringify({ model: 'mock-a', messages: [{ role: 'user', content: 'hi' }] }) })
      assert.equal(chat.status, 200)
      assert.equal(((await chat.json()) as any).object, 'chat.completion')
      const refused = await fetch(`${url}/v1/messages/count_tokens`, { method: 'POST', headers: {}, body: '{}' })
      assert.equal(refused.status, 401)
      assert.equal(((await refused.json()) as any).type, 'error')
      for (const [method, path] of [['GET', '/v1/models'], ['POST', '/v1/chat/completions/'], ['POST', '/v1beta/models/x:generateContent'], ['GET', '/v1/chat/completions']]) {
        await (await fetch(`${url}${path}`, { method, headers: auth, body: method === 'POST' ? '{}' : undefined })).arrayBuffer()
      }
      assert.deepEqual(reached, ['GET /v1/models', 'POST /v1/chat/completions/', 'POST /v1beta/models/x:generateContent', 'GET /v1/chat/completions'])
    } finally {
      await new Promise((resolve) => server.close(resolve))
    }
  })

  test("Azure OpenAI's POST paths take the lane once the /v1 map missed; other /openai/ paths reach the router", async ({ assert }) => {
    const reached: string[] = []
    const lane = withApiLane((req, res) => {
      reached.push(`${req.method} ${req.url}`)
      res.end()
    })
    const { server, url } = await listen(lane)
    try {
      const user = await seedUser()
      const headers = { 'api-key': user.key, 'content-type': 'application/json' }
      const hello = [{ role: 'user', content: 'hi' }]
      const deployment = await fetch(`${url}/openai/deployments/mock-a/chat/completions?api-version=2024-10-21`, { method: 'POST', headers, body: JSON.stringify({ messages: hello }) })
      assert.equal(deployment.status, 200)
      assert.equal(((await deployment.json()) as any).model, 'mock-a')
      const v1 = await fetch(`${url}/openai/v1/embeddings`, { method: 'POST', headers, body: JSON.stringify({ model: 'mock-embed', input: 'x' }) })
      assert.equal(v1.status, 200)
      for (const path of ['/openai/deployments/mock-a/fine_tuning/jobs', '/openai/deployments//chat/completions', '/openai/files', '/openai/v1/messages']) {
        await (await fetch(`${url}${path}`, { method: 'POST', headers, body: '{}' })).arrayBuffer()
      }
      assert.deepEqual(reached, [
        'POST /openai/deployments/mock-a/fine_tuning/jobs',
        'POST /openai/deployments//chat/completions',
        'POST /openai/files',
        'POST /openai/v1/messages',
      ])
    } finally {
      await new Promise((resolve) => server.close(resolve))
    }
  })
})
