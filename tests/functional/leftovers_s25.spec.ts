import http from 'node:http'
import { test } from '@japa/runner'
import { baseUrl, gateway, post, refreshCaches, resetDatabase, seedChannel, seedUser, startMock } from '#tests/helpers'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'

/**
 * Leftovers of the last pass: the token counter's in-flight accounting,
 * whole numbers in the portal and the panel's filters, a plan the cache has
 * not loaded yet, /api/status's model names, and stored-response ids no
 * response can have.
 */

/** A POST whose body the test writes (and may never finish). */
function rawPost(path: string, headers: Record<string, string>, send: (req: http.ClientRequest) => void): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const url = new URL(`${baseUrl()}${path}`)
    const req = http.request({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk) => (text += chunk))
      res.on('end', () => {
        let body: any = text
        try {
          body = JSON.parse(text)
        } catch {}
        resolve({ status: res.statusCode!, body })
      })
    })
    req.on('error', (error: any) => (error.code === 'EPIPE' || error.code === 'ECONNRESET' ? undefined : reject(error)))
    send(req)
  })
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

test.group('Leftovers (s25): /utils/token_counter in flight', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'counted', provider: 'openai', baseUrl: mock.url, models: ['gpt-4o-mini'] })
    await refreshCaches()
    return () => mock.stop()
  })

  test("held to the gateway's in-flight bound (503 overloaded, LiteLLM's shape) and to the key's max_parallel; its place freed when answered", async ({ assert }) => {
    const service = (await gateway()).service
    for (let i = 0; i < 200 && service.inFlight > 0; i++) await sleep(10)
    const base = service.inFlight
    const user = await seedUser({ keyModels: ['gpt-4o-mini'], key: { maxParallel: 1 } })
    const auth = { authorization: `Bearer ${user.key}` }
    const body = { model: 'gpt-4o-mini', prompt: 'Hello there' }

    const counted = await post('/utils/token_counter', body, auth)
    assert.equal(counted.status, 200)
    for (let i = 0; i < 50 && service.inFlight > base; i++) await sleep(10)
    assert.equal(service.inFlight, base, 'the answered count gave its place back')

    const saved = service.maxInFlight
    service.maxInFlight = base
    try {
      const refused = await post('/utils/token_counter', body, auth)
      assert.equal(refused.status, 503, await refused.clone().text())
      const error = ((await refused.json()) as any).error
      assert.equal(error.code, '503', "LiteLLM's shape: the status as text")
      assert.include(error.message, 'in flight')
    } finally {
      service.maxInFlight = saved
    }

    // The key may run one call at a time: a count still uploading its body holds that place.
    let stalled: http.ClientRequest | undefined
    void rawPost('/utils/token_counter', { ...auth, 'content-type': 'application/json', 'content-length': '1000' }, (req) => {
      req.write('{')
      stalled = req
    }).catch(() => {})
    try {
      await sleep(150)
      const second = await post('/utils/token_counter', body, auth)
      assert.equal(second.status, 429)
    } finally {
      stalled?.destroy()
    }
  })
})
