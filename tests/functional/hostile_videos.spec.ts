import { test } from '@japa/runner'
import { createServer, type Server } from 'node:http'
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer } from 'node:net'
import { lookup } from 'node:dns/promises'
import { hostname } from 'node:os'
import { randomUUID } from 'node:crypto'
import db from '@adonisjs/lucid/services/db'
import { setPrice } from '#actions/set_price'
import { insertVideo } from '#gateway/videos/video_store'
import { videoLooks } from '#gateway/videos/video_service'
import { baseUrl, openai, refreshCaches, resetDatabase, seedChannel, seedUser, usageRows } from '#tests/helpers'

/**
 * The Videos API against a hostile upstream and a hostile client: a
 * completion that says more seconds than were asked for (billed: what was
 * asked and held), a client polling GET in a loop (the upstream asked once
 * in videoLooks.everyMs, looks at once sharing one call), and a Gemini
 * file download redirected through the channel's host to a local address
 * (refused: the redirect is followed by hand, off the channel's origin to
 * https only and never to a private or local IP address).
 */

interface Scripted {
  /** What the upstream says of a video's seconds when it is done */
  seconds: string
  /** Looks before it is done */
  polls: number
  looks: number
}

function listen(server: Server): Promise<string> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)))
}

test.group('Videos against a hostile upstream', (group) => {
  let upstream: Server
  let secret: Server
  let url = ''
  let secretUrl = ''
  let secretHits = 0
  /** A TCP listener on loopback: any connection to it (a TLS hello or else) counts */
  let raw: TcpServer
  let rawPort = 0
  let rawConnections = 0
  let upstreamGets = 0
  let storageKeys: Array<string | undefined> = []
  let script: Scripted = { seconds: '4', polls: 1, looks: 0 }
  const videos = new Map<string, Scripted & { asked: string }>()
  let googleChannelId = 0

  group.setup(async () => {
    await resetDatabase()
    secret = createServer((_req, res) => {
      secretHits++
      res.end('SECRET: instance credentials')
    })
    secretUrl = await listen(secret)
    raw = createTcpServer((socket) => {
      rawConnections++
      socket.destroy()
    })
    await new Promise<void>((resolve) => raw.listen(0, '127.0.0.1', resolve))
    rawPort = (raw.address() as AddressInfo).port
    upstream = createServer((req, res) => {
      const path = req.url ?? ''
      let body = ''
      req.on('data', (chunk) => (body += chunk))
      req.on('end', () => {
        const json = (status: number, value: unknown) => {
          res.writeHead(status, { 'content-type': 'application/json' })
          res.end(JSON.stringify(value))
        }
        if (req.method === 'POST' && path === '/v1/videos') {
          // The openai SDK sends a form
          const asked = /name="seconds"\r\n\r\n(\d+)/.exec(body)?.[1] ?? '4'
          const id = `vid_${videos.size + 1}`
          videos.set(id, { ...script, looks: 0, asked })
          return json(200, { id, object: 'video', status: 'queued', seconds: asked })
        }
        const match = /^\/v1\/videos\/([^/]+)$/.exec(path)
        if (req.method === 'GET' && match) {
          upstreamGets++
          const video = videos.get(match[1])!
          video.looks++
          const done = video.looks >= video.polls
          // A slow answer: looks at once overlap
          return setTimeout(() => json(200, { id: match[1], object: 'video', status: done ? 'completed' : 'in_progress', seconds: done ? video.seconds : video.asked }), 100)
        }
        if (path === '/v1beta/files/local:download') return res.writeHead(302, { location: `${url}/hop` }).end()
        if (path === '/hop') return res.writeHead(302, { location: `${secretUrl}/latest/meta-data/` }).end()
        if (path === '/v1beta/files/metadata:download') return res.writeHead(302, { location: 'https://169.254.169.254/latest/meta-data/' }).end()
        // A name (not an IP) whose DNS answer is loopback: this machine's own name, and localhost with its trailing dot
        if (path === '/v1beta/files/named:download') return res.writeHead(302, { location: `https://${hostname()}:${rawPort}/v` }).end()
        if (path === '/v1beta/files/dotted:download') return res.writeHead(302, { location: `https://LOCALHOST.:${rawPort}/v` }).end()
        if (path === '/v1beta/files/mapped:download') return res.writeHead(302, { location: `https://[::127.0.0.1]:${rawPort}/v` }).end()
        if (path === '/v1beta/files/file:download') return res.writeHead(302, { location: 'file:///etc/passwd' }).end()
        if (path === '/v1beta/files/good:download') return res.writeHead(302, { location: `${url}/storage/good` }).end()
        if (path === '/storage/good') {
          storageKeys.push(req.headers['x-goog-api-key'] as string | undefined)
          res.writeHead(200, { 'content-type': 'video/mp4' })
          return res.end('MP4 BYTES')
        }
        json(404, { error: { message: 'not here' } })
      })
    })
    url = await listen(upstream)
    await seedChannel({ name: 'openai', provider: 'openai', baseUrl: `${url}/v1`, models: ['sora-2'] })
    googleChannelId = (await seedChannel({ name: 'gemini', provider: 'google', baseUrl: `${url}/v1beta`, models: ['veo-3.0-generate-001'] })).id
    await setPrice({ model: 'sora-*', input: '0', output: '0', perVideoSecond: '0.1' })
    await refreshCaches()
    return async () => {
      await new Promise((resolve) => upstream.close(resolve))
      await new Promise((resolve) => secret.close(resolve))
      await new Promise((resolve) => raw.close(resolve))
    }
  })

  test('an upstream that says 12 seconds, or 1e9, for a 4-second video: billed the 4 asked for and held', async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    const client = openai(user.key)
    for (const said of ['12', '1e9']) {
      script = { seconds: said, polls: 1, looks: 0 }
      const video = await client.videos.create({ model: 'sora-2', prompt: 'a cat', seconds: '4' })
      assert.equal((await client.videos.retrieve(video.id)).status, 'completed')
    }
    const rows = await usageRows(user.userId)
    assert.deepEqual(
      rows.map((r) => [r.video_seconds, r.cost]),
      [
        [4, '0.400000000000'],
        [4, '0.400000000000'],
      ]
    )
    // Fewer seconds than asked: what it made
    script = { seconds: '4', polls: 1, looks: 0 }
    const short = await client.videos.create({ model: 'sora-2', prompt: 'a dog', seconds: '8' })
    await client.videos.retrieve(short.id)
    assert.include((await usageRows(user.userId)).at(-1), { video_seconds: 4, cost: '0.400000000000' })
  })

  test('a client polling GET in a loop: the upstream asked once per videoLooks.everyMs, looks at once sharing one call', async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    const client = openai(user.key)
    script = { seconds: '4', polls: 1000, looks: 0 }
    const videoIds: string[] = []
    for (let i = 0; i < 5; i++) videoIds.push((await client.videos.create({ model: 'sora-2', prompt: `clip ${i}`, seconds: '4' })).id)
    upstreamGets = 0
    const started = Date.now()
    // 30 GETs at once, then 30 one after another, then 10 lists of the 5 videos
    const together = await Promise.all(Array.from({ length: 30 }, () => client.videos.retrieve(videoIds[0])))
    for (let i = 0; i < 30; i++) await client.videos.retrieve(videoIds[0])
    for (let i = 0; i < 10; i++) await client.videos.list()
    const elapsed = Date.now() - started
    assert.isTrue(together.every((v) => v.status === 'in_progress'))
    // Before: 60 + 10 x 5 = 110 upstream calls. After: one per video per window the loop ran through.
    const windows = Math.ceil(elapsed / videoLooks.everyMs) + 1
    assert.isAtMost(upstreamGets, 5 * windows, `${upstreamGets} upstream GETs in ${elapsed} ms`)
    assert.isAtMost(upstreamGets, 20, `${upstreamGets} upstream GETs in ${elapsed} ms`)

    // Past the window, the next GET asks again, and a finished video is billed by it
    videos.get([...videos.keys()].at(-5)!)!.polls = 0
    await new Promise((resolve) => setTimeout(resolve, videoLooks.everyMs + 50))
    const before = upstreamGets
    assert.equal((await client.videos.retrieve(videoIds[0])).status, 'completed')
    assert.equal(upstreamGets, before + 1)
    assert.lengthOf(await usageRows(user.userId), 1)
  })

  test("a Gemini file's download redirected to a local address, the metadata server or file:: refused; Google's own redirect followed, the key on the channel's host only", async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    const video = async (file: string) => {
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
    const content = (id: string) => fetch(`${baseUrl()}/v1/videos/${id}/content`, { headers: { authorization: `Bearer ${user.key}` } })

    // The `named` case needs this machine's name to resolve to a loopback address (/etc/hosts, as on these
    // machines); where it does not, that case proves nothing and is left out.
    const namedIsLoopback = /^(127\.|::1$)/.test((await lookup(hostname()).catch(() => ({ address: '' }))).address)
    for (const file of ['local', 'metadata', 'file', ...(namedIsLoopback ? ['named'] : []), 'dotted', 'mapped']) {
      const response = await content(await video(file))
      assert.equal(response.status, 502, file)
      const body = (await response.json()) as any
      assert.equal(body.error.code, 'provider_error', file)
      assert.notInclude(JSON.stringify(body), 'SECRET')
    }
    assert.equal(secretHits, 0, 'the local address was never asked')
    assert.equal(rawConnections, 0, 'no name resolving to loopback was connected to')

    storageKeys = []
    const good = await content(await video('good'))
    assert.equal(good.status, 200)
    assert.equal(await good.text(), 'MP4 BYTES')
    assert.deepEqual(storageKeys, ['upstream-secret'])
  })
})
