import { test } from '@japa/runner'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import app from '@adonisjs/core/services/app'
import db from '@adonisjs/lucid/services/db'
import type { PostgreConfig } from '@adonisjs/lucid/types/database'
import { withApiLane } from '#gateway/http/api_lane'
import { baseUrl, gateway } from '#tests/helpers'

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

  test('readiness is 503 before the boot is over, and while the database does not answer; liveness stays 200', async ({ assert, cleanup }) => {
    const gw = await gateway()
    gw.ready = false
    cleanup(() => {
      gw.ready = true
    })
    const booting = await fetch(`${baseUrl()}/health/readiness`)
    assert.equal(booting.status, 503)
    assert.deepInclude((await booting.json()) as any, { status: 'unhealthy', ready: false, db: 'connected' })
    gw.ready = true

    // The default connection pointed at a port nothing listens on: the database is unreachable for the probe.
    await gw.meter.drain()
    const name = db.primaryConnectionName
    const config = db.manager.get(name)!.config as PostgreConfig
    const closed = createServer()
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve))
    const port = (closed.address() as AddressInfo).port
    await new Promise((resolve) => closed.close(resolve))
    const unreachable: PostgreConfig = { ...config, connection: { connectionString: `postgres://nobody:x@127.0.0.1:${port}/none` } }
    db.manager.patch(name, unreachable)
    try {
      const down = await fetch(`${baseUrl()}/health/readiness`)
      assert.equal(down.status, 503)
      assert.deepInclude((await down.json()) as any, { status: 'unhealthy', ready: true, db: 'unavailable' })
      const live = await fetch(`${baseUrl()}/health/liveliness`)
      assert.equal(live.status, 200)
    } finally {
      db.manager.patch(name, config)
    }
    const back = await fetch(`${baseUrl()}/health/readiness`)
    assert.equal(back.status, 200)
  })

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
