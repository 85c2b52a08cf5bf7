import { test } from '@japa/runner'
import { randomUUID } from 'node:crypto'
import db from '@adonisjs/lucid/services/db'
import { toFile } from 'openai'
import ace from '@adonisjs/core/services/ace'
import { setPrice } from '#actions/set_price'
import { createApiKey } from '#actions/issue_api_key'
import { createUser } from '#actions/create_user'
import PriceSet from '#commands/price_set'
import { PanelClient, textOf } from '#tests/panel_client'
import { toPico } from '#gateway/metering/money'
import { claimBilling } from '#gateway/videos/video_store'
import { videoLooks } from '#gateway/videos/video_service'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { mockVideoBytes } from '#tests/fixtures/mock_upstream/videos'
import { failure, genai } from '#tests/clients'
import { adminApi, balanceAndLedger, baseUrl, gateway, openai, post, refreshCaches, resetDatabase, seedChannel, seedUser, startMock, usageRows } from '#tests/helpers'

/**
 * Video generation through the gateway: OpenAI's Videos API with the openai
 * SDK (relayed to an OpenAI channel; made by Veo on Google and Vertex
 * channels) and a Gemini client's own generateVideos. Each video is held at
 * its seconds x the model's price per second when asked for, and billed
 * once, as one usage row, when the gateway first sees it completed (a GET,
 * a list, the sweep); a failed, expired or deleted one bills nothing.
 */

/** USD per second of video */
const SORA = '0.1'
const VEO = '0.4'
const usd = (value: string) => toPico(value)

/** A 1x1 PNG: the first frame of a video */
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==', 'base64')

async function videoRow(publicId: string) {
  return db.from('videos').where('public_id', publicId).first()
}

async function bytesOf(response: Response): Promise<Buffer> {
  return Buffer.from(await response.arrayBuffer())
}

test.group('Videos', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock({ videoPolls: 2 })
    await seedChannel({ name: 'openai', provider: 'openai', baseUrl: mock.url, models: ['sora-2', 'sora-2-pro', 'sora-alias'], modelMapping: { 'sora-alias': 'sora-2-2025-10-06' } })
    await seedChannel({ name: 'gemini', provider: 'google', baseUrl: `${mock.origin}/v1beta`, models: ['veo-3.0-generate-001'] })
    await seedChannel({ name: 'vertex', provider: 'vertex', apiKey: 'ya29.mock-token', baseUrl: `${mock.origin}/v1/projects/p1/locations/us-central1`, models: ['veo-3.0-fast-generate-001'] })
    await seedChannel({ name: 'gemini-openai', provider: 'gemini', baseUrl: `${mock.origin}/v1beta/openai`, models: ['sora-gemini'] })
    for (const model of ['sora-*']) await setPrice({ model, input: '0', output: '0', perVideoSecond: SORA })
    await setPrice({ model: 'veo-*', input: '0', output: '0', perVideoSecond: VEO })
    await refreshCaches()
    // These cases poll a video through its states look by look: each GET asks the upstream (hostile_videos.spec.ts tests the spacing)
    const every = videoLooks.everyMs
    videoLooks.everyMs = 0
    return () => {
      videoLooks.everyMs = every
      return mock.stop()
    }
  })

  test('openai SDK: created with a first frame (multipart), held, polled to completion, downloaded, listed; billed once at seconds x price', async ({ assert }) => {
    const gw = await gateway()
    const user = await seedUser({ balance: '10' })
    const client = openai(user.key)

    const video = await client.videos.create({
      model: 'sora-2',
      prompt: 'a cat on a skateboard',
      seconds: '8',
      size: '1280x720',
      input_reference: await toFile(PNG, 'frame.png', { type: 'image/png' }),
    })
    assert.match(video.id, /^video_gw[A-Za-z0-9]{24}$/)
    assert.include(video, { object: 'video', status: 'queued', model: 'sora-2', seconds: '8', size: '1280x720' })
    const upstream = [...mock.videos.videos.values()].at(-1)!
    assert.equal(upstream.prompt, 'a cat on a skateboard')
    assert.equal(upstream.reference, `file:${PNG.length}`, 'the first frame reached the upstream byte for byte')
    assert.equal(mock.lastRequest()!.headers.authorization, 'Bearer upstream-secret')
    // Held: 8 s at $0.1, on the balance every priced request checks.
    const hold = usd('0.8')
    assert.equal(gw.videos.holds.heldFor(user.userId), hold)
    assert.equal((await gw.catalog.user(user.userId))!.reservedPico, hold)
    assert.equal((await videoRow(video.id)).upstream_id, upstream.id)

    const running = await client.videos.retrieve(video.id)
    assert.include(running, { id: video.id, status: 'in_progress', progress: 50 })
    assert.lengthOf(await usageRows(user.userId), 0, 'nothing billed before the video is made')

    const done = await client.videos.retrieve(video.id)
    assert.include(done, { id: video.id, status: 'completed', progress: 100, model: 'sora-2' })

    const content = await client.videos.downloadContent(video.id)
    assert.equal(content.headers.get('content-type'), 'video/mp4')
    assert.isTrue((await bytesOf(content)).equals(mockVideoBytes(upstream.id)), 'the video relayed whole')
    const thumbnail = await client.videos.downloadContent(video.id, { variant: 'thumbnail' })
    assert.equal(thumbnail.headers.get('content-type'), 'image/webp')
    assert.isTrue((await bytesOf(thumbnail)).equals(mockVideoBytes(upstream.id, 'thumbnail')))

    const list = await client.videos.list()
    assert.deepEqual(list.data.map((v) => [v.id, v.status]), [[video.id, 'completed']])

    // Looked at again, twice, and swept: still one bill.
    await client.videos.retrieve(video.id)
    await client.videos.retrieve(video.id)
    await db.from('videos').where('public_id', video.id).update({ polled_at: null })
    await gw.videos.sweep()

    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 1)
    const row = await videoRow(video.id)
    assert.include(rows[0], { endpoint: 'videos', request_id: row.request_id, model: 'sora-2', status: 200, error_code: null, video_seconds: 8, cost: '0.800000000000' })
    assert.equal(row.billed_cost, '0.800000000000')
    const money = await balanceAndLedger(user.userId)
    assert.equal(money.balance, '9.200000000000')
    assert.equal(money.ledger, money.balance, 'the ledger is the balance: one charge')
    assert.equal(gw.videos.holds.heldFor(user.userId), 0n)
    assert.equal((await gw.catalog.user(user.userId))!.reservedPico, 0n)

    // The panel's usage export states the seconds billed.
    await createUser({ email: `csv-${randomUUID()}@test.local`, password: 'password123', role: 'admin' }).then(async ({ user: admin }) => {
      const panel = new PanelClient()
      await panel.login(admin.email, 'password123')
      const csv = (await panel.get(`/admin/usage/export.csv?user=${user.userId}`)).html.trim().split('\n')
      const header = csv[0].split(',')
      assert.equal(csv[1].split(',')[header.indexOf('video_seconds')], '8')
    })
  })

  test("a mapped model goes up under the channel's name, JSON body; another user's video is OpenAI's 404 everywhere", async ({ assert }) => {
    const owner = await seedUser({ balance: '10' })
    const other = await seedUser({ balance: '10' })
    const response = await post('/v1/videos', { model: 'sora-alias', prompt: 'waves' }, { authorization: `Bearer ${owner.key}` })
    assert.equal(response.status, 200)
    const video = (await response.json()) as any
    assert.include(video, { model: 'sora-alias', seconds: '4' })
    const upstream = [...mock.videos.videos.values()].at(-1)!
    assert.equal(upstream.model, 'sora-2-2025-10-06')
    assert.equal((await gateway()).videos.holds.heldFor(owner.userId), usd('0.4'), "OpenAI's default 4 seconds held")

    const client = openai(other.key)
    for (const call of [
      () => client.videos.retrieve(video.id),
      () => client.videos.downloadContent(video.id),
      () => client.videos.delete(video.id),
      () => client.videos.remix(video.id, { prompt: 'again' }),
    ]) {
      const refused = await failure(call())
      assert.equal(refused.status, 404)
      assert.include(refused.error, { type: 'invalid_request_error', code: 'video_not_found' })
    }
    assert.lengthOf((await client.videos.list()).data, 0)
    // Unknown ids are the same 404 (no oracle of which ids exist).
    assert.equal((await failure(client.videos.retrieve('video_gwnothere'))).status, 404)
  })

  test('a failed video bills nothing: its hold released, its row a zero-cost video_failed', async ({ assert }) => {
    const gw = await gateway()
    const user = await seedUser({ balance: '10' })
    const client = openai(user.key)
    const video = await client.videos.create({ model: 'sora-2', prompt: '[fail] a forbidden scene', seconds: '12' })
    assert.equal(gw.videos.holds.heldFor(user.userId), usd('1.2'))
    await client.videos.retrieve(video.id)
    const failed = await client.videos.retrieve(video.id)
    assert.equal(failed.status, 'failed')
    assert.equal(failed.error?.code, 'moderation_blocked')
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 1)
    assert.include(rows[0], { endpoint: 'videos', error_code: 'video_failed', cost: '0.000000000000', video_seconds: 0 })
    assert.equal((await balanceAndLedger(user.userId)).balance, '10.000000000000')
    assert.equal(gw.videos.holds.heldFor(user.userId), 0n)
    const noContent = await failure(client.videos.downloadContent(video.id))
    assert.equal(noContent.status, 400)
    assert.equal(noContent.error.code, 'video_not_ready')
  })

  test('GETs racing at completion bill once; two claims of one bill: one wins', async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    const client = openai(user.key)
    const video = await client.videos.create({ model: 'sora-2', prompt: '[polls=1] a race', seconds: '4' })
    const seen = await Promise.all(Array.from({ length: 6 }, () => client.videos.retrieve(video.id)))
    assert.deepEqual([...new Set(seen.map((v) => v.status))], ['completed'])
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 1)
    assert.equal(rows[0].cost, '0.400000000000')
    const money = await balanceAndLedger(user.userId)
    assert.equal(money.balance, '9.600000000000')
    assert.equal(money.ledger, money.balance)

    // Another instance's bill of the same video: the row's claim lets exactly one writer through.
    const other = await client.videos.create({ model: 'sora-2', prompt: 'claimed twice' })
    const id = Number((await videoRow(other.id)).id)
    const claims = await Promise.all([1, 2, 3].map(() => claimBilling(id, 'completed', null, '0.4', new Date())))
    assert.deepEqual(claims.filter(Boolean).length, 1)
  })

  test("bad requests in OpenAI's words: missing prompt, bad seconds, bad size, unknown model, a Gemini (OpenAI-compatible) channel, over the balance", async ({ assert }) => {
    const user = await seedUser({ balance: '0.5' })
    const auth = { authorization: `Bearer ${user.key}` }
    const cases: Array<[unknown, number, string, string | null]> = [
      [{ model: 'sora-2' }, 400, 'missing_required_parameter', 'prompt'],
      [{ model: 'sora-2', prompt: 'x', seconds: '5' }, 400, 'invalid_value', 'seconds'],
      [{ model: 'veo-3.0-generate-001', prompt: 'x', seconds: 12 }, 400, 'invalid_value', 'seconds'],
      [{ model: 'sora-2', prompt: 'x', size: 'big' }, 400, 'invalid_value', 'size'],
      [{ model: 'claude-video-x', prompt: 'x' }, 404, 'model_not_found', null],
      [{ model: 'sora-gemini', prompt: 'x' }, 400, 'unsupported_endpoint', null],
      // 8 s at $0.1 is $0.8, more than the $0.5 left.
      [{ model: 'sora-2', prompt: 'x', seconds: '8' }, 402, 'insufficient_balance', null],
    ]
    for (const [body, status, code, param] of cases) {
      const response = await post('/v1/videos', body, auth)
      const answer = (await response.json()) as any
      assert.equal(response.status, status, JSON.stringify(answer))
      assert.equal(answer.error.code, code)
      assert.isString(answer.error.message)
      if (param) assert.equal(answer.error.param, param)
    }
    assert.lengthOf([...mock.videos.videos.values()].filter((v) => v.prompt === 'x'), 0, 'nothing reached the upstream')
    // Without /v1 too (LiteLLM's base URL form), same answer.
    const bare = await post('/videos', { model: 'sora-2' }, auth)
    assert.equal(bare.status, 400)
    assert.include(((await bare.json()) as any).error, { code: 'missing_required_parameter', param: 'prompt' })
  })

  test('remix: a new video on the same channel, held and billed as any; delete: refused upstream while running, a Veo video too (it cannot be cancelled)', async ({ assert }) => {
    const gw = await gateway()
    const user = await seedUser({ balance: '10' })
    const client = openai(user.key)
    const source = await client.videos.create({ model: 'sora-2', prompt: '[polls=1] source', seconds: '8' })
    await client.videos.retrieve(source.id)
    const remix = await client.videos.remix(source.id, { prompt: '[polls=1] now at night' })
    assert.match(remix.id, /^video_gw/)
    assert.include(remix, { remixed_from_video_id: source.id, seconds: '8' })
    assert.equal(gw.videos.holds.heldFor(user.userId), usd('0.8'))
    assert.equal([...mock.videos.videos.values()].at(-1)!.remixedFrom, (await videoRow(source.id)).upstream_id)
    await client.videos.retrieve(remix.id)
    assert.deepEqual((await usageRows(user.userId)).map((r) => r.cost), ['0.800000000000', '0.800000000000'])

    // Still running upstream: OpenAI refuses the delete, the client is told so, the video stays held.
    const running = await client.videos.create({ model: 'sora-2', prompt: '[polls=5] long', seconds: '4' })
    const refused = await failure(client.videos.delete(running.id))
    assert.equal(refused.status, 400)
    assert.equal(gw.videos.holds.heldFor(user.userId), usd('0.4'))
    // Completed: deleted upstream and here.
    const deleted = await client.videos.delete(source.id)
    assert.deepEqual(deleted, { id: source.id, object: 'video.deleted', deleted: true })
    assert.equal((await failure(client.videos.retrieve(source.id))).status, 404)

    // A Veo video still being made: Veo has no cancel (it goes on upstream, at the operator's cost), so its delete is
    // refused as OpenAI's is, its hold kept. Before: deleted here, its hold released, billed nothing (a free video).
    const rows = (await usageRows(user.userId)).length
    const veo = await client.videos.create({ model: 'veo-3.0-generate-001', prompt: '[polls=3] slow', seconds: '4' })
    assert.equal(gw.videos.holds.heldFor(user.userId), usd('0.4') + usd('1.6'))
    const stillRunning = await failure(client.videos.delete(veo.id))
    assert.equal(stillRunning.status, 400)
    assert.equal(stillRunning.error.code, 'video_in_progress')
    assert.equal(gw.videos.holds.heldFor(user.userId), usd('0.4') + usd('1.6'))
    assert.lengthOf(await usageRows(user.userId), rows)
    // Once made: billed as made, then deleted.
    while ((await client.videos.retrieve(veo.id)).status !== 'completed');
    assert.deepEqual(await client.videos.delete(veo.id), { id: veo.id, object: 'video.deleted', deleted: true })
    assert.equal(gw.videos.holds.heldFor(user.userId), usd('0.4'))
    assert.include((await usageRows(user.userId)).at(-1), { error_code: null, cost: '1.600000000000' })
  })

  test('Veo behind the Videos API on a Gemini API channel: translated, polled, downloaded with the channel key, billed its seconds', async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    const client = openai(user.key)
    const video = await client.videos.create({ model: 'veo-3.0-generate-001', prompt: 'a lighthouse', size: '720x1280' })
    assert.include(video, { status: 'queued', seconds: '8', size: '720x1280', model: 'veo-3.0-generate-001' })
    const sent = mock.requests.filter((r) => r.path.endsWith(':predictLongRunning')).at(-1)!
    assert.equal(sent.path, '/v1beta/models/veo-3.0-generate-001:predictLongRunning')
    assert.equal(sent.headers['x-goog-api-key'], 'upstream-secret')
    assert.deepEqual(JSON.parse(sent.body), {
      instances: [{ prompt: 'a lighthouse' }],
      parameters: { durationSeconds: 8, sampleCount: 1, aspectRatio: '9:16', resolution: '720p' },
    })
    assert.equal((await gateway()).videos.holds.heldFor(user.userId), usd('3.2'))

    assert.equal((await client.videos.retrieve(video.id)).status, 'in_progress')
    const done = await client.videos.retrieve(video.id)
    assert.include(done, { status: 'completed', progress: 100, prompt: 'a lighthouse' })
    const upstream = [...mock.videos.videos.values()].at(-1)!
    const content = await client.videos.downloadContent(video.id)
    assert.isTrue((await bytesOf(content)).equals(mockVideoBytes(`${upstream.id}-0`)))
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 1)
    assert.include(rows[0], { provider: 'google', video_seconds: 8, cost: '3.200000000000', error_code: null })

    // The safety filter: done without a video is failed, billed nothing.
    const filtered = await client.videos.create({ model: 'veo-3.0-generate-001', prompt: '[polls=1] [filtered] x', seconds: '4' })
    const seen = await client.videos.retrieve(filtered.id)
    assert.equal(seen.status, 'failed')
    assert.equal(seen.error?.code, 'content_filtered')
    assert.equal((await usageRows(user.userId)).at(-1).cost, '0.000000000000')
  })

  test('Veo on Vertex: fetchPredictOperation, the inline video decoded; a gs:// video refused', async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    const client = openai(user.key)
    const video = await client.videos.create({ model: 'veo-3.0-fast-generate-001', prompt: '[polls=1] a forest', seconds: '6' as '4' })
    const sent = mock.requests.find((r) => r.path.includes('veo-3.0-fast-generate-001:predictLongRunning'))!
    assert.equal(sent.path, '/v1/projects/p1/locations/us-central1/publishers/google/models/veo-3.0-fast-generate-001:predictLongRunning')
    assert.equal(sent.headers.authorization, 'Bearer ya29.mock-token')
    assert.equal((await client.videos.retrieve(video.id)).status, 'completed')
    const upstream = [...mock.videos.videos.values()].at(-1)!
    const stored = await videoRow(video.id)
    assert.notInclude(JSON.stringify(stored.object), mockVideoBytes(`${upstream.id}-0`).toString('base64').slice(0, 100), 'inline bytes not stored')
    const content = await client.videos.downloadContent(video.id)
    assert.isTrue((await bytesOf(content)).equals(mockVideoBytes(`${upstream.id}-0`)))
    assert.include((await usageRows(user.userId))[0], { provider: 'vertex', video_seconds: 6, cost: '2.400000000000' })

    const gcs = await client.videos.create({ model: 'veo-3.0-fast-generate-001', prompt: '[polls=1] [gcs] a river', seconds: '4' })
    assert.equal((await client.videos.retrieve(gcs.id)).status, 'completed')
    const refused = await failure(client.videos.downloadContent(gcs.id))
    assert.equal(refused.status, 502)
  })

  test("a Gemini client's generateVideos: passed through, its operation under the gateway's name, its owner's only, billed seconds x videos", async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    const other = await seedUser({ balance: '10' })
    const ai = genai(user.key)
    let operation = await ai.models.generateVideos({ model: 'veo-3.0-generate-001', prompt: 'two boats', config: { numberOfVideos: 2, durationSeconds: 6 } })
    assert.match(operation.name!, /^models\/veo-3\.0-generate-001\/operations\/vop_gw[A-Za-z0-9]{24}$/)
    const sent = JSON.parse(mock.requests.filter((r) => r.path.endsWith(':predictLongRunning')).at(-1)!.body)
    assert.deepEqual(sent.parameters, { sampleCount: 2, durationSeconds: 6 })
    assert.equal((await gateway()).videos.holds.heldFor(user.userId), usd('4.8'), '12 seconds held')

    const refused = await genai(other.key)
      .operations.getVideosOperation({ operation })
      .then(() => null)
      .catch((error) => error)
    assert.equal(refused?.status, 404)

    while (!operation.done) operation = await ai.operations.getVideosOperation({ operation })
    const videos = operation.response!.generatedVideos!
    assert.lengthOf(videos, 2)
    const upstream = [...mock.videos.videos.values()].at(-1)!
    const id = operation.name!.split('/').at(-1)
    assert.equal(videos[0].video!.uri, `${baseUrl()}/v1/videos/${id}/content`)
    const second = await fetch(videos[1].video!.uri!, { headers: { 'x-goog-api-key': user.key } })
    assert.isTrue((await bytesOf(second)).equals(mockVideoBytes(`${upstream.id}-1`)))
    assert.include((await usageRows(user.userId))[0], { video_seconds: 12, cost: '4.800000000000' })

    // A bad request in Google's words.
    const bad = await post('/v1beta/models/veo-3.0-generate-001:predictLongRunning', { instances: [{}] }, { 'x-goog-api-key': user.key })
    assert.equal(bad.status, 400)
    const answer = (await bad.json()) as any
    assert.include(answer.error, { code: 400, status: 'INVALID_ARGUMENT' })
  })

  test('the sweep bills a video nobody asks about; one past its age is failed, its hold released, nothing billed', async ({ assert }) => {
    const gw = await gateway()
    const user = await seedUser({ balance: '10' })
    const client = openai(user.key)
    const video = await client.videos.create({ model: 'sora-2', prompt: 'unwatched', seconds: '4' })
    for (let i = 0; i < 3; i++) {
      await db.from('videos').where('public_id', video.id).update({ polled_at: null })
      await gw.videos.sweep()
    }
    const row = await videoRow(video.id)
    assert.equal(row.status, 'completed')
    assert.lengthOf(await usageRows(user.userId), 1)
    assert.equal((await client.videos.retrieve(video.id)).status, 'completed')

    const old = await client.videos.create({ model: 'sora-2', prompt: '[polls=99] never ends', seconds: '4' })
    await db.from('videos').where('public_id', old.id).update({ created_at: new Date(Date.now() - 7 * 3_600_000), polled_at: null })
    await gw.videos.sweep()
    const expired = await client.videos.retrieve(old.id)
    assert.equal(expired.status, 'failed')
    assert.equal(expired.error?.code, 'video_expired')
    assert.equal(gw.videos.holds.heldFor(user.userId), 0n)
    assert.include((await usageRows(user.userId)).at(-1), { error_code: 'video_expired', cost: '0.000000000000' })
  })

  test("a video whose instance died: its row alone holds it in every instance, and any instance's sweep bills it; a bill whose usage row a crash lost is written again", async ({ assert }) => {
    const gw = await gateway()
    const user = await seedUser({ balance: '10' })
    // Another instance asked the upstream for it, recorded it, and was killed: nothing of it is in this process.
    const made = (await (
      await fetch(`${mock.url}/videos`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'sora-2', prompt: '[polls=1] orphan', seconds: '8' }) })
    ).json()) as any
    const channel = await db.from('channels').where('name', 'openai').first()
    await db.table('videos').insert({
      public_id: 'video_gwOrphanOrphanOrphanOrphan',
      upstream_id: made.id,
      wire: 'openai',
      user_id: user.userId,
      api_key_id: user.keyId,
      channel_id: channel.id,
      model: 'sora-2',
      served_model: 'sora-2',
      seconds: 8,
      status: 'queued',
      object: JSON.stringify(made),
      request_id: randomUUID(),
      hold: '0.8',
    })
    await gw.videos.holds.sync()
    assert.equal(gw.videos.holds.heldFor(user.userId), usd('0.8'), "the dead instance's hold counts here")
    await gw.videos.sweep()
    assert.equal(gw.videos.holds.heldFor(user.userId), 0n)
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 1)
    assert.include(rows[0], { video_seconds: 8, cost: '0.800000000000' })

    // Billed (the claim committed) and the process gone before the meter wrote the row: written again from the claim.
    const client = openai(user.key)
    const lost = await client.videos.create({ model: 'sora-2', prompt: 'lost row', seconds: '4' })
    const row = await videoRow(lost.id)
    assert.isTrue(await claimBilling(Number(row.id), 'completed', null, '0.4', new Date(Date.now() - 20 * 60_000), 4))
    gw.videos.holds.release(Number(row.id))
    assert.equal(await gw.videos.repairBills(), 1)
    assert.equal(await gw.videos.repairBills(), 0, 'written once')
    const repaired = (await usageRows(user.userId)).at(-1)
    assert.include(repaired, { request_id: row.request_id, video_seconds: 4, cost: '0.400000000000' })
    const money = await balanceAndLedger(user.userId)
    assert.equal(money.balance, '8.800000000000')
    assert.equal(money.ledger, money.balance)
  })

  test('the price per second of video: price:set --per-video-second, the management API, the Prices form, LiteLLM model info', async ({ assert }) => {
    const command = await ace.create(PriceSet, ['--model', 'sora-cli-*', '--input', '0', '--output', '0', '--per-video-second', '0.3'])
    ace.ui.switchMode('raw')
    await command.exec()
    command.assertSucceeded()
    assert.include(await db.from('model_prices').where('model_pattern', 'sora-cli-*').first(), { per_video_second: '0.300000' })

    await createUser({ email: 'ops-video@test.local', password: 'password123', role: 'admin' })
    const adminKey = (await createApiKey({ userRef: 'ops-video@test.local', name: 'ops', manage: true })).key
    const set = await adminApi('POST', '/prices', adminKey, { model: 'veo-api-*', input: '0', output: '0', per_video_second: 0.5 })
    assert.equal(set.status, 200)
    assert.include(set.body, { per_video_second: '0.5' })
    const refused = await adminApi('POST', '/prices', adminKey, { model: 'veo-api-*', input: '0', output: '0', per_video_second: '-1' })
    assert.equal(refused.status, 400)

    const panel = new PanelClient()
    await panel.login('ops-video@test.local', 'password123')
    await panel.get('/admin/prices')
    await panel.post('/admin/prices', { model: 'sora-panel-*', input: '0', output: '0', perVideoSecond: '0.25' })
    const saved = await db.from('model_prices').where('model_pattern', 'sora-panel-*').first()
    assert.equal(saved.per_video_second, '0.250000')
    const listedText = textOf((await panel.get('/admin/prices')).html)
    assert.include(listedText, '$0.25 / s video')
    assert.include((await panel.get(`/admin/prices?edit=${saved.id}`)).html, 'name="perVideoSecond"')

    // LiteLLM's model info: its field for the price and its mode for video models.
    await refreshCaches()
    const user = await seedUser({ balance: '1' })
    const info = await fetch(`${baseUrl()}/v1/model/info?litellm_model_id=sora-2`, { headers: { authorization: `Bearer ${user.key}` } })
    const sora = ((await info.json()) as any).data[0].model_info
    assert.equal(sora.output_cost_per_video_per_second, 0.1)
    assert.equal(sora.mode, 'video_generation')
  })
})
