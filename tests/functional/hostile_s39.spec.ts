import { test } from '@japa/runner'
import { createServer, get, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { randomUUID } from 'node:crypto'
import db from '@adonisjs/lucid/services/db'
import { AzureOpenAI, toFile } from 'openai'
import { setPrice } from '#actions/set_price'
import { insertVideo } from '#gateway/videos/video_store'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { baseUrl, gateway, openai, refreshCaches, resetDatabase, seedChannel, seedUser, startMock, usageRows } from '#tests/helpers'

/**
 * Hostile input on the Azure Batch API, the video download and the
 * long-job endpoints merged last pass: a batch file line nested thousands
 * deep (it opened the Azure channel's circuit), a client holding a Veo
 * video's download open without reading (the gateway read the upstream's
 * whole file into memory).
 */

function listen(server: Server): Promise<string> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)))
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

test.group('Azure batches against a hostile client', (group) => {
  let mock: MockUpstream
  let openaiMock: MockUpstream
  let azureId = 0

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock({ basePath: '/openai' })
    openaiMock = await startMock()
    await seedChannel({ name: 'oa', provider: 'openai', baseUrl: `${openaiMock.origin}/v1`, models: ['gpt-4o-mini'] })
    await setPrice({ model: 'gpt-4o-mini', input: '2', output: '8' })
    azureId = (
      await seedChannel({
        name: 'az-classic',
        provider: 'azure',
        baseUrl: `${mock.origin}/openai`,
        apiKey: 'az-key',
        models: ['gpt-4o'],
        modelMapping: { 'gpt-4o': 'gpt-4o-batch' },
      })
    ).id
    await setPrice({ model: 'gpt-4o', input: '2', output: '8' })
    await refreshCaches()
    return async () => {
      await mock.stop()
      await openaiMock.stop()
    }
  })

  test("a line nested 20,000 deep: the client's 400, not the channel's failure (three such uploads, CIRCUIT_FAILURES, opened its circuit for everyone)", async ({ assert }) => {
    const gw = await gateway()
    const user = await seedUser({ balance: '1' })
    const client = openai(user.key)
    const deep = `${'['.repeat(20_000)}${']'.repeat(20_000)}`
    const line = `{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o","messages":[{"role":"user","content":"x"}],"x":${deep}}}\n`
    const uploadsBefore = mock.requests.length
    for (let i = 0; i < 6; i++) {
      const refused = await client.files.create({ file: await toFile(Buffer.from(line), 'deep.jsonl'), purpose: 'batch' }).catch((error) => error)
      assert.equal(refused.status, 400)
      assert.equal(refused.error.code, 'json_too_deep')
      assert.include(refused.error.message, 'Line 1')
      assert.notInclude(refused.error.message, 'call stack')
    }
    assert.equal(mock.requests.length, uploadsBefore, 'nothing sent upstream')
    assert.deepInclude(gw.health.stateOf(azureId), { state: 'closed', failures: 0 })

    // The channel still serves everyone: a good file goes up.
    const good = `{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o","messages":[{"role":"user","content":"x"}]}}\n`
    const file = await client.files.create({ file: await toFile(Buffer.from(good), 'good.jsonl'), purpose: 'batch' })
    assert.match(file.id, /^file-gw/)
  })

  test("an AzureOpenAI client's file as Azure's docs write it (url /chat/completions, endpoint /chat/completions): taken, run, billed once", async ({ assert }) => {
    const gw = await gateway()
    const user = await seedUser({ balance: '1' })
    const azure = new AzureOpenAI({ endpoint: baseUrl(), apiKey: user.key, apiVersion: '2024-10-21', maxRetries: 0 })
    const azureDocs = (model: string) =>
      Buffer.from(
        [0, 1]
          .map((i) => JSON.stringify({ custom_id: `task-${i}`, method: 'POST', url: '/chat/completions', body: { model, messages: [{ role: 'user', content: `q${i}` }], max_tokens: 20 } }))
          .join('\n')
      )

    // Before: 400 "url must be one of /v1/chat/completions, ..."
    const file = await azure.files.create({ file: await toFile(azureDocs('gpt-4o'), 'azure.jsonl'), purpose: 'batch' })
    const stored = [...mock.batches.files.values()].find((f) => f.filename === 'azure.jsonl')!
    assert.deepEqual(
      stored.bytes.toString('utf8').trim().split('\n').map((l) => [JSON.parse(l).url, JSON.parse(l).body.model]),
      [['/chat/completions', 'gpt-4o-batch'], ['/chat/completions', 'gpt-4o-batch']]
    )
    const batch = await azure.batches.create({ input_file_id: file.id, endpoint: '/chat/completions' as any, completion_window: '24h', metadata: { mock_polls: '0' } })
    assert.equal([...mock.batches.batches.values()].at(-1)!.endpoint, '/chat/completions')
    assert.equal((await azure.batches.retrieve(batch.id)).status, 'completed')
    await azure.batches.retrieve(batch.id)
    await gw.batches.sweep()
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 1)
    assert.include(rows[0], { endpoint: 'batch', provider: 'azure', served_model: 'gpt-4o-batch' })
    assert.equal(gw.batches.holds.heldFor(user.userId), 0n)

    // The same file for a model on an OpenAI channel: its lines go in OpenAI's form
    const other = await azure.files.create({ file: await toFile(azureDocs('gpt-4o-mini'), 'to-openai.jsonl'), purpose: 'batch' })
    assert.match(other.id, /^file-gw/)
    const sent = [...openaiMock.batches.files.values()].find((f) => f.filename === 'to-openai.jsonl')!
    assert.deepEqual(
      sent.bytes.toString('utf8').trim().split('\n').map((l) => JSON.parse(l).url),
      ['/v1/chat/completions', '/v1/chat/completions']
    )
    // A url that is neither form is still refused
    const wrong = `{"custom_id":"a","method":"POST","url":"/v1/v1/chat/completions","body":{"model":"gpt-4o"}}`
    const refused = await azure.files.create({ file: await toFile(Buffer.from(wrong), 'w.jsonl'), purpose: 'batch' }).catch((error) => error)
    assert.equal(refused.status, 400)
    assert.include(refused.error.message, 'url must be one of')
  })
})

test.group('Veo downloads against a slow client', (group) => {
  let upstream: Server
  let url = ''
  let googleChannelId = 0
  /** Bytes the upstream has written of the video so far */
  let sent = 0
  /** Bytes of the endless redirect's body written */
  let redirectBodySent = 0
  const VIDEO_BYTES = 96 * 1024 * 1024

  group.setup(async () => {
    await resetDatabase()
    upstream = createServer((req, res) => {
      const path = req.url ?? ''
      // Redirects a hostile upstream answers with
      if (path === '/v1beta/files/loop:download') return res.writeHead(302, { location: `${url}/loop-b` }).end()
      if (path === '/loop-b') return res.writeHead(302, { location: `${url}/v1beta/files/loop:download` }).end()
      if (path === '/v1beta/files/hugebody:download') {
        // A redirect whose body never ends: the gateway must not read it
        res.writeHead(302, { location: 'https://169.254.169.254/' })
        const chunk = Buffer.alloc(64 * 1024, 1)
        const pump = () => {
          while (redirectBodySent < 256 * 1024 * 1024) {
            redirectBodySent += chunk.length
            if (!res.write(chunk)) return res.once('drain', pump)
          }
          res.end()
        }
        return pump()
      }
      if (path === '/v1beta/files/longlocation:download') return res.writeHead(302, { location: `https://example.com/${'a'.repeat(12_000)}` }).end()
      if (path === '/v1beta/files/schemeless:download') return res.writeHead(302, { location: '//127.0.0.1:1/x' }).end()
      if (path === '/v1beta/files/backslash:download') return res.writeHead(302, { location: 'https:\\\\127.0.0.1\\x' }).end()
      if (path === '/v1beta/files/userinfo:download') return res.writeHead(302, { location: 'https://user:pass@[::ffff:0:7f00:1]/x' }).end()
      if (path === '/v1beta/files/sixtofour:download') return res.writeHead(302, { location: 'https://[2002:7f00:1::]/x' }).end()
      if (path !== '/v1beta/files/big:download') return res.writeHead(404).end()
      res.writeHead(200, { 'content-type': 'video/mp4', 'content-length': String(VIDEO_BYTES) })
      const chunk = Buffer.alloc(64 * 1024, 7)
      // Written as fast as the gateway takes it (the upstream's own back-pressure respected)
      const pump = () => {
        while (sent < VIDEO_BYTES) {
          sent += chunk.length
          if (!res.write(chunk)) return res.once('drain', pump)
        }
        res.end()
      }
      res.on('close', () => res.destroyed || res.destroy())
      pump()
    })
    url = await listen(upstream)
    googleChannelId = (await seedChannel({ name: 'gemini', provider: 'google', baseUrl: `${url}/v1beta`, models: ['veo-3.0-generate-001'] })).id
    await refreshCaches()
    return async () => {
      upstream.closeAllConnections()
      await new Promise((resolve) => upstream.close(resolve))
    }
  })

  /** A completed, billed Veo video of `user`'s whose file the upstream serves at `file` */
  async function veoVideo(user: { userId: number; keyId: number }, file: string): Promise<string> {
    const row = await insertVideo({
      upstream_id: `models/veo-3.0-generate-001/operations/${file}`,
      wire: 'veo',
      user_id: user.userId,
      api_key_id: user.keyId,
      team_id: null,
      budget_model: null,
      channel_id: googleChannelId,
      model: 'veo-3.0-generate-001',
      served_model: 'veo-3.0-generate-001',
      seconds: 8,
      samples: 1,
      size: null,
      status: 'completed',
      object: { prompt: 'x', operation: { name: 'op', done: true, response: { generateVideoResponse: { generatedSamples: [{ video: { uri: `${url}/v1beta/files/${file}:download` } }] } } } },
      remixed_from: null,
      request_id: randomUUID(),
      hold: '0',
    })
    await db.from('videos').where('id', row.id).update({ billed_at: new Date(), billed_cost: '0' })
    return row.public_id
  }

  test("a client that opens a 96 MB video's /content and does not read: the upstream read no faster than the client", async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    const id = await veoVideo(user, 'big')
    sent = 0
    const response = await new Promise<IncomingMessage>((resolve, reject) => {
      get(`${baseUrl()}/v1/videos/${id}/content`, { headers: { authorization: `Bearer ${user.key}` } }, resolve).on('error', reject)
    })
    assert.equal(response.statusCode, 200)
    // The client reads nothing for a while
    response.pause()
    await sleep(1500)
    const whilePaused = sent
    // Then reads it all: every byte arrives
    let received = 0
    response.on('data', (chunk: Buffer) => (received += chunk.length))
    response.resume()
    await new Promise((resolve) => response.on('end', resolve))
    assert.equal(received, VIDEO_BYTES)
    // Before: the gateway read the whole 96 MB into its memory at once. After: what the sockets' buffers hold (11-12 MB here).
    assert.isBelow(whilePaused, 48 * 1024 * 1024, `${(whilePaused / 1048576).toFixed(1)} MB read from the upstream while the client read nothing`)
  })

  test('redirects that loop, never end their body, carry a 12 KB Location, or hide a local address in a URL trick: 502 at once, nothing local reached', async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    for (const file of ['loop', 'hugebody', 'longlocation', 'schemeless', 'backslash', 'userinfo', 'sixtofour']) {
      const id = await veoVideo(user, file)
      const started = Date.now()
      const response = await fetch(`${baseUrl()}/v1/videos/${id}/content`, { headers: { authorization: `Bearer ${user.key}` } })
      const body = (await response.json()) as any
      assert.equal(response.status, 502, file)
      assert.equal(body.error.code, 'provider_error', file)
      assert.isBelow(Date.now() - started, 5000, file)
    }
    // The endless redirect body was not read (what the sockets' buffers took, not its 256 MB)
    assert.isBelow(redirectBodySent, 48 * 1024 * 1024)
  })

  test("an id with a NUL in the provider Files APIs: each wire's 404, as any id nobody holds (it was a 400 from the database's refusal)", async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    const google = { 'x-goog-api-key': user.key }
    for (const path of ['/v1beta/files/a%00b', '/download/v1beta/files/a%00b:download']) {
      const response = await fetch(`${baseUrl()}${path}`, { headers: google })
      assert.equal(response.status, 404, path)
      assert.equal(((await response.json()) as any).error.status, 'NOT_FOUND', path)
    }
    const anthropic = await fetch(`${baseUrl()}/v1/files/file_a%00b`, { headers: { 'x-api-key': user.key, 'anthropic-version': '2023-06-01' } })
    assert.equal(anthropic.status, 404)
    assert.equal(((await anthropic.json()) as any).error.type, 'not_found_error')
  })
})
