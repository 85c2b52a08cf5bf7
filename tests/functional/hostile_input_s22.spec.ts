import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import { setPrice } from '#actions/set_price'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { baseUrl, gateway, multipartBody, refreshCaches, resetDatabase, seedChannel, seedUser, startMock, usageRows } from '#tests/helpers'

/**
 * The twenty-second pass's hostile input on the newest endpoints (Files and
 * Batch API, LiteLLM's management paths): what a sloppy or hostile client
 * sends that must be a clear error in the endpoint's own format, never a
 * generic one after work was done upstream, and never a batch left running
 * unbilled or a file left upstream unlisted.
 */

/** One batch request line for `model`, with extra body fields. */
function line(i: number, model: string, extra: Record<string, unknown> = {}) {
  return JSON.stringify({ custom_id: `r${i}`, method: 'POST', url: '/v1/chat/completions', body: { model, messages: [{ role: 'user', content: 'hi' }], ...extra } })
}

async function api(method: string, path: string, key: string, body?: Buffer | string, contentType?: string) {
  const headers: Record<string, string> = { authorization: `Bearer ${key}` }
  if (contentType) headers['content-type'] = contentType
  const response = await fetch(`${baseUrl()}${path}`, { method, headers, body })
  return { status: response.status, body: (await response.json()) as any }
}

function uploadForm(content: string, filename = 'requests.jsonl') {
  return multipartBody([
    ['purpose', 'batch'],
    ['file', content, filename],
  ])
}

async function upload(key: string, content: string, filename?: string) {
  const form = uploadForm(content, filename)
  return api('POST', '/v1/files', key, form.body, form.contentType)
}

test.group('Hostile input (pass 22): Files and Batch API', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'openai', provider: 'openai', baseUrl: mock.url, models: ['gpt-4o-mini', 'free-model'] })
    await setPrice({ model: 'gpt-4o-mini', input: '2', output: '8' })
    await refreshCaches()
    return () => mock.stop()
  })

  /** Every file the upstream holds is one of the gateway's rows (none uploaded and then lost). */
  async function orphans() {
    const rows = await db.from('batch_objects').where('kind', 'file').select('upstream_id')
    const known = new Set(rows.map((r) => r.upstream_id))
    return [...mock.batches.files.keys()].filter((id) => !known.has(id))
  }

  test("batch lines' huge max_tokens: the file is stored (its hold bounded), its batch refused with 402, nothing left upstream", async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    // A free model's file holds nothing: it is stored and batched.
    const free = await upload(user.key, [line(1, 'free-model', { max_tokens: 1e19 }), line(2, 'free-model', { max_tokens: 1e300 })].join('\n'))
    assert.equal(free.status, 200)
    const row = await db.from('batch_objects').where('public_id', free.body.id).first()
    // Bounded at the largest exact number (the lines' sum is past a bigint's range).
    assert.equal(Number(row.completion_hold), Number.MAX_SAFE_INTEGER)
    const freeBatch = await api('POST', '/v1/batches', user.key, JSON.stringify({ input_file_id: free.body.id, endpoint: '/v1/chat/completions', completion_window: '24h' }), 'application/json')
    assert.equal(freeBatch.status, 200)
    // A priced one: 5,000 lines of 2e15 tokens each, past a bigint's range once summed.
    const lines = Array.from({ length: 5000 }, (_, i) => line(i, 'gpt-4o-mini', { max_tokens: 2e15 }))
    const priced = await upload(user.key, lines.join('\n'))
    assert.equal(priced.status, 200)
    const batch = await api('POST', '/v1/batches', user.key, JSON.stringify({ input_file_id: priced.body.id, endpoint: '/v1/chat/completions', completion_window: '24h' }), 'application/json')
    assert.equal(batch.status, 402)
    assert.include(batch.body.error, { code: 'insufficient_balance', type: 'insufficient_quota' })
    assert.deepEqual(await orphans(), [])
    assert.equal((await gateway()).batches.holds.heldFor(user.userId), 0n)
  })

  test('a file name with a NUL is refused before the upload', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const before = mock.batches.files.size
    const refused = await upload(user.key, line(1, 'gpt-4o-mini'), 'a\u0000.jsonl')
    assert.equal(refused.status, 400)
    assert.include(refused.body.error, { type: 'invalid_request_error', code: 'invalid_value', param: 'file' })
    assert.equal(refused.body.error.message, "The file's name contains a NUL character")
    assert.equal(mock.batches.files.size, before)
    assert.deepEqual(await orphans(), [])
  })
})
