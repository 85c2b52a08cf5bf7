import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import { toFile } from 'openai'
import { setPrice } from '#actions/set_price'
import { toPico } from '#gateway/metering/money'
import { videoLooks } from '#gateway/videos/video_service'
import type { MockUpstream, RecordedRequest } from '#tests/fixtures/mock_upstream/server'
import { mockVideoBytes } from '#tests/fixtures/mock_upstream/videos'
import { failure } from '#tests/clients'
import { balanceAndLedger, gateway, openai, refreshCaches, resetDatabase, seedChannel, seedUser, startMock, usageRows } from '#tests/helpers'

/**
 * Videos on Azure OpenAI channels: Azure serves Sora 2 at its v1 API
 * (`{resource}/openai/v1/videos`, OpenAI's schema, the deployment as the
 * body's model, the `api-key` header) whatever shape the channel's base has.
 * Through the gateway with the openai SDK: created, looked at, downloaded,
 * remixed and deleted as on an OpenAI channel, held and billed once, the
 * owner's only, failed over. The mock answers Azure's classic paths with its
 * 404 and a dated api-version on the v1 path with its 400, as Azure does.
 */

const usd = (value: string) => toPico(value)

/** A 1x1 PNG: the first frame of a video */
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==', 'base64')

async function videoRow(publicId: string) {
  return db.from('videos').where('public_id', publicId).first()
}

async function bytesOf(response: Response): Promise<Buffer> {
  return Buffer.from(await response.arrayBuffer())
}

test.group('Videos on Azure OpenAI channels', (group) => {
  let mock: MockUpstream
  let down: MockUpstream
  /** The requests the mock got since `from`, as `METHOD path` */
  const calls = (from: number, upstream = mock) => upstream.requests.slice(from).map((r: RecordedRequest) => `${r.method} ${r.path}`)

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock({ videoPolls: 2 })
    down = await startMock({ status: 503 })
    // Classic shape with a dated api-version pasted (the deployments' shape): videos still go to the v1 API, without it.
    await seedChannel({
      name: 'azure-classic',
      provider: 'azure',
      apiKey: 'azure-secret',
      baseUrl: `${mock.origin}/openai?api-version=2024-10-21`,
      models: ['sora-2'],
      modelMapping: { 'sora-2': 'my-sora-2' },
    })
    // The v1 shape, with the preview api-version its operator pasted: kept.
    await seedChannel({ name: 'azure-v1', provider: 'azure', apiKey: 'azure-secret', baseUrl: `${mock.origin}/openai/v1?api-version=preview`, models: ['sora-2-pro'] })
    // Two channels of one model: the first (by priority) down.
    await seedChannel({ name: 'azure-down', provider: 'azure', apiKey: 'azure-secret', baseUrl: `${down.origin}/openai/v1`, models: ['sora-failover'], priority: 10 })
    await seedChannel({ name: 'azure-up', provider: 'azure', apiKey: 'azure-secret', baseUrl: `${mock.origin}/openai/v1`, models: ['sora-failover'], priority: 0 })
    await setPrice({ model: 'sora-*', input: '0', output: '0', perVideoSecond: '0.1' })
    await refreshCaches()
    // These cases poll a video through its states look by look: each GET asks the upstream.
    const every = videoLooks.everyMs
    videoLooks.everyMs = 0
    return async () => {
      videoLooks.everyMs = every
      await down.stop()
      await mock.stop()
    }
  })

  test("classic base: made at /openai/v1/videos under the deployment's name (api-key, no dated api-version), polled, downloaded, listed; billed once", async ({ assert }) => {
    const gw = await gateway()
    const user = await seedUser({ balance: '10' })
    const client = openai(user.key)
    const from = mock.requests.length

    const video = await client.videos.create({
      model: 'sora-2',
      prompt: 'a heron over a lake',
      seconds: '8',
      size: '1280x720',
      input_reference: await toFile(PNG, 'frame.png', { type: 'image/png' }),
    })
    assert.match(video.id, /^video_gw[A-Za-z0-9]{24}$/)
    assert.include(video, { object: 'video', status: 'queued', model: 'sora-2', seconds: '8', size: '1280x720' })
    const upstream = [...mock.videos.videos.values()].at(-1)!
    assert.equal(upstream.model, 'my-sora-2', "the body's model is the deployment")
    assert.equal(upstream.reference, `file:${PNG.length}`, 'the first frame reached Azure byte for byte')
    const created = mock.requests[from]
    assert.equal(`${created.method} ${created.path}`, 'POST /openai/v1/videos')
    assert.equal(created.headers['api-key'], 'azure-secret')
    assert.isUndefined(created.headers.authorization)
    assert.equal((await videoRow(video.id)).upstream_id, upstream.id)
    assert.equal(gw.videos.holds.heldFor(user.userId), usd('0.8'), '8 s at $0.1 held')

    assert.include(await client.videos.retrieve(video.id), { id: video.id, status: 'in_progress' })
    assert.lengthOf(await usageRows(user.userId), 0, 'nothing billed before the video is made')
    assert.include(await client.videos.retrieve(video.id), { id: video.id, status: 'completed', model: 'sora-2' })

    const content = await client.videos.downloadContent(video.id)
    assert.equal(content.headers.get('content-type'), 'video/mp4')
    assert.isTrue((await bytesOf(content)).equals(mockVideoBytes(upstream.id)), 'the video relayed whole')
    const thumbnail = await client.videos.downloadContent(video.id, { variant: 'thumbnail' })
    assert.equal(thumbnail.headers.get('content-type'), 'image/webp')
    assert.isTrue((await bytesOf(thumbnail)).equals(mockVideoBytes(upstream.id, 'thumbnail')))
    assert.deepEqual((await client.videos.list()).data.map((v) => [v.id, v.status]), [[video.id, 'completed']])

    // Looked at again and swept: still one bill.
    await client.videos.retrieve(video.id)
    await db.from('videos').where('public_id', video.id).update({ polled_at: null })
    await gw.videos.sweep()
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 1)
    assert.include(rows[0], { endpoint: 'videos', model: 'sora-2', error_code: null, video_seconds: 8, cost: '0.800000000000' })
    const money = await balanceAndLedger(user.userId)
    assert.equal(money.balance, '9.200000000000')
    assert.equal(money.ledger, money.balance, 'the ledger is the balance: one charge')
    assert.equal(gw.videos.holds.heldFor(user.userId), 0n)

    // Every call went to the v1 API: never the classic `/openai/videos?api-version=2024-10-21` (Azure's 404).
    assert.deepEqual(calls(from), [
      'POST /openai/v1/videos',
      `GET /openai/v1/videos/${upstream.id}`,
      `GET /openai/v1/videos/${upstream.id}`,
      `GET /openai/v1/videos/${upstream.id}/content`,
      `GET /openai/v1/videos/${upstream.id}/content?variant=thumbnail`,
    ])
  })

  test("v1 base: remix and delete at its v1 paths with its pasted api-version; refused while running; another user's video is OpenAI's 404", async ({ assert }) => {
    const gw = await gateway()
    const user = await seedUser({ balance: '10' })
    const other = await seedUser({ balance: '10' })
    const client = openai(user.key)
    const from = mock.requests.length

    const source = await client.videos.create({ model: 'sora-2-pro', prompt: '[polls=1] a lighthouse', seconds: '4' })
    const up = (await videoRow(source.id)).upstream_id
    assert.equal((await client.videos.retrieve(source.id)).status, 'completed')
    const remix = await client.videos.remix(source.id, { prompt: '[polls=1] the lighthouse at night' })
    assert.match(remix.id, /^video_gw/)
    assert.include(remix, { remixed_from_video_id: source.id, model: 'sora-2-pro', seconds: '4' })
    const remixed = [...mock.videos.videos.values()].at(-1)!
    assert.equal(remixed.remixedFrom, up)
    assert.equal(remixed.prompt, '[polls=1] the lighthouse at night')
    assert.equal(gw.videos.holds.heldFor(user.userId), usd('0.4'), 'the remix held as a new video')
    assert.equal((await client.videos.retrieve(remix.id)).status, 'completed')
    assert.deepEqual((await usageRows(user.userId)).map((r) => r.cost), ['0.400000000000', '0.400000000000'])

    const stranger = openai(other.key)
    for (const call of [
      () => stranger.videos.retrieve(source.id),
      () => stranger.videos.downloadContent(source.id),
      () => stranger.videos.delete(source.id),
      () => stranger.videos.remix(source.id, { prompt: 'mine now' }),
    ]) {
      const refused = await failure(call())
      assert.equal(refused.status, 404)
      assert.include(refused.error, { type: 'invalid_request_error', code: 'video_not_found' })
    }

    // Still running on Azure: its refusal to delete is the client's answer, the hold kept, nothing billed.
    const running = await client.videos.create({ model: 'sora-2-pro', prompt: '[polls=5] long', seconds: '4' })
    const refused = await failure(client.videos.delete(running.id))
    assert.equal(refused.status, 400)
    assert.equal(gw.videos.holds.heldFor(user.userId), usd('0.4'))
    assert.lengthOf(await usageRows(user.userId), 2)

    // Completed: deleted on Azure and here.
    assert.deepEqual(await client.videos.delete(source.id), { id: source.id, object: 'video.deleted', deleted: true })
    assert.isFalse(mock.videos.videos.has(up), 'deleted upstream')
    assert.equal((await failure(client.videos.retrieve(source.id))).status, 404)

    const seen = calls(from)
    assert.include(seen, `POST /openai/v1/videos/${up}/remix?api-version=preview`)
    assert.include(seen, `DELETE /openai/v1/videos/${up}?api-version=preview`)
    assert.isTrue(seen.every((call) => call.includes(' /openai/v1/videos') && call.includes('api-version=preview')), seen.join('\n'))
  })

  test('an Azure channel that is down is failed over to the next; the video then lives on the one that made it, billed once', async ({ assert }) => {
    const gw = await gateway()
    const user = await seedUser({ balance: '10' })
    const client = openai(user.key)
    const [fromDown, from] = [down.requests.length, mock.requests.length]

    const video = await client.videos.create({ model: 'sora-failover', prompt: 'a train in the snow', seconds: '4' })
    assert.deepEqual(calls(fromDown, down), ['POST /openai/v1/videos'], 'tried first (priority), answered 503')
    const upstream = [...mock.videos.videos.values()].at(-1)!
    assert.equal(upstream.prompt, 'a train in the snow')
    const channel = await db.from('channels').where('name', 'azure-up').first()
    assert.equal((await videoRow(video.id)).channel_id, channel.id)

    await client.videos.retrieve(video.id)
    assert.equal((await client.videos.retrieve(video.id)).status, 'completed')
    assert.deepEqual(calls(fromDown, down), ['POST /openai/v1/videos'], 'never asked about a video it did not make')
    assert.deepEqual(calls(from), ['POST /openai/v1/videos', `GET /openai/v1/videos/${upstream.id}`, `GET /openai/v1/videos/${upstream.id}`])
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 1)
    assert.include(rows[0], { model: 'sora-failover', cost: '0.400000000000' })
    assert.equal(gw.videos.holds.heldFor(user.userId), 0n)
  })
})
