import { test } from '@japa/runner'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import app from '@adonisjs/core/services/app'
import { withApiLane } from '#gateway/http/api_lane'
import { baseUrl, gateway } from '#tests/helpers'
import { cuttableProxy } from '#tests/fixtures/cuttable_proxy'
import { startInstance, until } from '#tests/instances_harness'

/**
 * LiteLLM's probe paths, as Kubernetes manifests copied from a LiteLLM
 * deployment use them: liveness says the process answers, readiness that it
 * booted and its database answers (503 otherwise). No key.
 */
test.group("LiteLLM's /health/liveliness and /health/readiness", () => {
  test('liveness answers without a key, whatever the database; readiness is 200 when booted and the database answers', async ({ assert }) => {
    for (const path of ['/health/liveliness', '/health/liveness']) {
      const live = await fetch(`${baseUrl()}${path}`)
      assert.equal(live.status, 200, path)
      assert.equal(await live.json(), "I'm alive!")
    }
    const ready = await fetch(`${baseUrl()}/health/readiness`)
    assert.equal(ready.status, 200)
    assert.deepInclude((await ready.json()) as any, { status: 'healthy', ready: true, db: 'connected' })
    // A probe path that does not exist is the API's JSON 404, not a page.
    const unknown = await fetch(`${baseUrl()}/health/nothing`)
    assert.equal(unknown.status, 404)
    assert.match(unknown.headers.get('content-type') ?? '', /application\/json/)
  })

  test('readiness is 503 before the boot is over', async ({ assert, cleanup }) => {
    const gw = await gateway()
    gw.ready = false
    cleanup(() => {
      gw.ready = true
    })
    const booting = await fetch(`${baseUrl()}/health/readiness`)
    assert.equal(booting.status, 503)
    assert.deepInclude((await booting.json()) as any, { status: 'unhealthy', ready: false, db: 'connected' })
    gw.ready = true
  })

  test('a gateway whose database stops answering: readiness 503 while it does not, 200 again after; liveness 200 throughout', async ({ assert, cleanup }) => {
    // A production gateway reaching the test database through a proxy that can be cut: a real outage for it alone.
    const proxy = await cuttableProxy(new URL(process.env.DATABASE_URL!))
    const instance = await startInstance('probed', { DATABASE_URL: proxy.url })
    cleanup(async () => {
      proxy.restore()
      await instance.stop()
      await proxy.close()
    })
    const probe = async (path: string) => {
      const response = await fetch(`${instance.url}${path}`)
      return { status: response.status, body: (await response.json()) as any }
    }
    assert.equal((await probe('/health/readiness')).status, 200)

    proxy.cut()
    const down = await until(() => probe('/health/readiness'), (r) => r.status === 503)
    assert.equal(down.status, 503)
    assert.deepInclude(down.body, { status: 'unhealthy', ready: true, db: 'unavailable' })
    assert.deepEqual(await probe('/health/liveliness'), { status: 200, body: "I'm alive!" })

    proxy.restore()
    const back = await until(() => probe('/health/readiness'), (r) => r.status === 200, 10_000)
    assert.deepInclude(back.body, { status: 'healthy', db: 'connected' })
  }).timeout(180_000)

  test('the router serves them alike with the API lane off', async ({ assert }) => {
    const server = await app.container.make('server')
    const handler = server.handle.bind(server) as (req: IncomingMessage, res: ServerResponse) => unknown
    const routed: Server = createServer(withApiLane(handler, false))
    await new Promise<void>((resolve) => routed.listen(0, '127.0.0.1', resolve))
    try {
      const url = `http://127.0.0.1:${(routed.address() as AddressInfo).port}`
      assert.equal((await fetch(`${url}/health/liveliness`)).status, 200)
      assert.equal((await fetch(`${url}/health/readiness`)).status, 200)
    } finally {
      await new Promise((resolve) => routed.close(resolve))
    }
  })
})
