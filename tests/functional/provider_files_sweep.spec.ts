import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { genai } from '#tests/clients'
import { baseUrl, resetDatabase, seedChannel, seedUser, startMock } from '#tests/helpers'
import { pruneProviderFiles } from '#actions/prune_provider_files'
import { UsageRetentionTimer } from '#services/usage_retention_timer'
import { providerFilesSweep } from '#services/retention_sweeps'
import { MAX_UPLOADS_IN_PROGRESS } from '#gateway/provider_files/gemini_files_api'
import { ProviderFileStore, type ProviderFileRow } from '#gateway/provider_files/provider_file_store'

/**
 * provider_files kept bounded and other instances told: a user's resumable
 * uploads in progress are capped (Google's 429, nothing started upstream,
 * starts at once cannot pass the cap together); the hourly sweep marks
 * expired files and caches deleted, removes uploads unfinished after a week
 * and deleted rows past the retention; a delete (or the sweep's expiry)
 * made by another instance reaches this one's memory through NOTIFY.
 */

const TEXT = Buffer.from('A file to forget.\n')
const HOUR = 3_600_000
const DAY = 24 * HOUR

const startsOn = (mock: MockUpstream) => mock.requests.filter((r) => r.method === 'POST' && r.path === '/upload/v1beta/files').length

function start(key: string) {
  return fetch(`${baseUrl()}/upload/v1beta/files`, {
    method: 'POST',
    headers: {
      'x-goog-api-key': key,
      'x-goog-upload-protocol': 'resumable',
      'x-goog-upload-command': 'start',
      'x-goog-upload-header-content-length': String(TEXT.length),
      'x-goog-upload-header-content-type': 'text/plain',
      'content-type': 'application/json',
    },
    body: JSON.stringify({ file: { displayName: 'part' } }),
  })
}

function generate(key: string, uri: string) {
  return fetch(`${baseUrl()}/v1beta/models/gemini-2.5-flash:generateContent`, {
    method: 'POST',
    headers: { 'x-goog-api-key': key, 'content-type': 'application/json' },
    body: JSON.stringify({ contents: [{ role: 'user', parts: [{ fileData: { fileUri: uri, mimeType: 'text/plain' } }, { text: 'Read it' }] }] }),
  })
}

/** The status generateContent answers once it is `status` (a NOTIFY reaches the listener after commit, a moment later). */
async function statusBecomes(call: () => Promise<Response>, status: number): Promise<number> {
  let last = 0
  for (let i = 0; i < 50; i++) {
    const response = await call()
    await response.arrayBuffer()
    last = response.status
    if (last === status) return last
    await new Promise((resolve) => setTimeout(resolve, 40))
  }
  return last
}

async function uploadingRows(userId: number, channelId: number, count: number, createdAt = new Date()) {
  const rows = Array.from({ length: count }, (_, i) => ({
    kind: 'gemini_file',
    user_id: userId,
    channel_id: channelId,
    status: 'uploading',
    upload_token: `tok-${userId}-${createdAt.getTime()}-${i}`,
    upload_url: 'https://upload.example/session',
    created_at: createdAt,
  }))
  return db.table('provider_files').insert(rows).returning('id')
}

test.group('Provider files: bounds, sweep and deletes seen everywhere', (group) => {
  let google: MockUpstream
  let channelId: number

  group.setup(async () => {
    await resetDatabase()
    google = await startMock()
    const channel = await seedChannel({ name: 'google', provider: 'google', baseUrl: `${google.origin}/v1beta`, models: ['gemini-2.5-flash'] })
    channelId = Number(channel.id)
    return () => google.stop()
  })

  test('uploads in progress are capped per user: Google\'s 429 before any session starts upstream; starts at once cannot pass it', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const other = await seedUser({ balance: '1' })
    const ids = await uploadingRows(user.userId, channelId, MAX_UPLOADS_IN_PROGRESS)
    const before = startsOn(google)
    const refused = await start(user.key)
    assert.equal(refused.status, 429, await refused.clone().text())
    assert.include(((await refused.json()) as any).error, { code: 429, status: 'RESOURCE_EXHAUSTED' })
    assert.equal(startsOn(google), before)
    // Another user is not held by them.
    assert.equal((await start(other.key)).status, 200)

    // One place free, five starts at once: one gets it (the others pass the first look together, and are refused at the insert).
    await db.from('provider_files').where('id', ids[0].id).delete()
    const answers = await Promise.all(Array.from({ length: 5 }, () => start(user.key)))
    assert.deepEqual(answers.map((a) => a.status).sort(), [200, 429, 429, 429, 429])
    const inProgress = await db.from('provider_files').where({ user_id: user.userId, status: 'uploading' }).count('* as n').first()
    assert.equal(Number(inProgress.n), MAX_UPLOADS_IN_PROGRESS)
  })

  test('the sweep: expired files and caches marked deleted, uploads unfinished after a week and deleted rows past the retention removed', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const now = new Date()
    const row = (values: Record<string, unknown>) => ({ kind: 'gemini_file', user_id: user.userId, channel_id: channelId, status: 'active', ...values })
    const inserted = await db
      .table('provider_files')
      .insert([
        row({ upstream_id: 'files/expired', expires_at: new Date(now.getTime() - HOUR) }),
        row({ kind: 'gemini_cache', upstream_id: 'cachedContents/expired', expires_at: new Date(now.getTime() - HOUR) }),
        row({ upstream_id: 'files/live', expires_at: new Date(now.getTime() + DAY) }),
        row({ kind: 'anthropic_file', upstream_id: 'file_forever', expires_at: null }),
        row({ upstream_id: 'files/old-deleted', status: 'deleted', deleted_at: new Date(now.getTime() - 40 * DAY) }),
        row({ upstream_id: 'files/new-deleted', status: 'deleted', deleted_at: new Date(now.getTime() - 2 * DAY) }),
        row({ status: 'uploading', upload_token: 'old-upload', created_at: new Date(now.getTime() - 8 * DAY) }),
        row({ status: 'uploading', upload_token: 'new-upload', created_at: new Date(now.getTime() - 6 * DAY) }),
      ])
      .returning(['id', 'upstream_id', 'upload_token'])
    const said: string[] = []
    // The hourly timer runs it (usage retention off: deleted rows then kept 31 days).
    const timer = new UsageRetentionTimer({ days: () => 0, log: (m) => said.push(m), sweeps: [{ ...providerFilesSweep, run: () => providerFilesSweep.run({ now }) }] })
    await timer.tick()
    assert.deepInclude(said, 'provider files: 2 expired marked deleted, 1 unfinished uploads and 1 deleted rows removed')

    const left = await db.from('provider_files').whereIn('id', inserted.map((r) => r.id)).select('upstream_id', 'upload_token', 'status', 'deleted_at', 'expires_at')
    const byName = new Map(left.map((r) => [r.upstream_id ?? r.upload_token, r]))
    assert.sameMembers([...byName.keys()], ['files/expired', 'cachedContents/expired', 'files/live', 'file_forever', 'files/new-deleted', 'new-upload'])
    assert.equal(byName.get('files/expired')!.status, 'deleted')
    // Deleted as of its expiry: the retention counts from then.
    assert.equal(byName.get('files/expired')!.deleted_at.getTime(), byName.get('files/expired')!.expires_at.getTime())
    assert.equal(byName.get('cachedContents/expired')!.status, 'deleted')
    assert.equal(byName.get('files/live')!.status, 'active')
    assert.equal(byName.get('file_forever')!.status, 'active')

    // Nothing more to do: a second run touches nothing; none (0 days) takes the other deleted rows, those expired too.
    assert.deepEqual(await pruneProviderFiles({ now }), { expired: 0, abandoned: 0, deleted: 0 })
    assert.deepEqual(await pruneProviderFiles({ now, keepDeletedDays: 0 }), { expired: 0, abandoned: 0, deleted: 3 })
  })

  test('an expired file swept, and a file deleted on another instance: this one forgets the id (NOTIFY), its owner\'s next reference is the 404', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const ai = genai(user.key)
    for (const how of ['expired', 'deleted elsewhere']) {
      const file = await ai.files.upload({ file: new Blob([TEXT], { type: 'text/plain' }), config: { mimeType: 'text/plain' } })
      // Named once: this instance remembers its holder (active), and reads the table no more for it.
      assert.equal((await generate(user.key, file.uri!)).status, 200)
      const row = (await db.from('provider_files').where('upstream_id', file.name!).first()) as ProviderFileRow
      if (how === 'expired') {
        await db.from('provider_files').where('id', row.id).update({ expires_at: new Date(Date.now() - HOUR) })
        assert.equal((await pruneProviderFiles()).expired, 1)
      } else {
        // Another instance's store (its own memory), deleting the row; the upstream still holds the file here.
        await new ProviderFileStore().markDeleted(row)
      }
      assert.isTrue(google.providerFiles.gemini.has(file.name!))
      assert.equal(await statusBecomes(() => generate(user.key, file.uri!), 404), 404, how)
    }
  })
})
