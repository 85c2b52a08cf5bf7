import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import { createUser } from '#actions/create_user'
import { createApiKey } from '#actions/issue_api_key'
import { toFile } from 'openai'
import { setPrice } from '#actions/set_price'
import { toPico } from '#gateway/metering/money'
import { createTeam, deleteTeams, setKeyTeam } from '#actions/teams'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { adminApi, baseUrl, gateway, openai, refreshCaches, resetDatabase, seedChannel, seedUser, startMock } from '#tests/helpers'

/**
 * Hostile and sloppy input against the last merges (batch custom ids, team
 * batch holds, the token counter, strict numbers, balance thresholds): a
 * value that is no whole number is refused naming its field, never read as
 * Number() reads it.
 */
let adminKey = ''

async function litellm(path: string, body: unknown) {
  const response = await fetch(`${baseUrl()}${path}`, {
    method: 'POST',
    headers: { 'authorization': `Bearer ${adminKey}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
  return { status: response.status, body: (await response.json()) as any }
}

/** Loose numbers Vine's number() read through Number(): 16, 1000, 5, 5, 1, 5 and (priority, weight) 0 */
const LOOSE = ['0x10', '1e3', ' 5', '5.0', true, [5], '']

test.group('Hostile input (s25): whole numbers in the management API and LiteLLM', (group) => {
  group.setup(async () => {
    await resetDatabase()
    await createUser({ email: 'ops-s25@test.local', password: 'admin-password', role: 'admin' })
    adminKey = (await createApiKey({ userRef: 'ops-s25@test.local', name: 'ops', manage: true })).key
    await refreshCaches()
  })

  test('key limits given as 0x10, 1e3, " 5", "5.0", true, [5] or "" are refused naming the field', async ({ assert }) => {
    const keysBefore = (await db.from('api_keys').count('* as n'))[0].n
    const made = await adminApi('POST', '/keys', adminKey, { user: 'ops-s25@test.local', name: 'target', rpm: 7 })
    assert.equal(made.status, 201)
    for (const value of LOOSE) {
      const label = JSON.stringify(value)
      for (const field of ['rpm', 'tpm', 'max_parallel_requests', 'expires_in_days']) {
        const created = await adminApi('POST', '/keys', adminKey, { user: 'ops-s25@test.local', [field]: value })
        assert.equal(created.status, 400, `POST ${field}=${label}: ${JSON.stringify(created.body)}`)
        assert.equal(created.body.error.code, 'invalid_field')
      }
      for (const field of ['rpm', 'tpm', 'max_parallel_requests']) {
        const patched = await adminApi('PATCH', `/keys/${made.body.id}`, adminKey, { [field]: value })
        assert.equal(patched.status, 400, `PATCH ${field}=${label}: ${JSON.stringify(patched.body)}`)
        assert.equal(patched.body.error.param, field)
      }
      for (const field of ['rpm_limit', 'tpm_limit', 'max_parallel_requests']) {
        const generated = await litellm('/key/generate', { user_id: 'ops-s25@test.local', [field]: value })
        assert.equal(generated.status, 400, `/key/generate ${field}=${label}: ${JSON.stringify(generated.body)}`)
        const updated = await litellm('/key/update', { key: String(made.body.id), [field]: value })
        assert.equal(updated.status, 400, `/key/update ${field}=${label}: ${JSON.stringify(updated.body)}`)
      }
    }
    assert.equal((await db.from('api_keys').count('* as n'))[0].n, Number(keysBefore) + 1, 'no key made')
    const kept = await db.from('api_keys').where('id', made.body.id).first()
    assert.equal(kept.rpm, 7)
    assert.isNull(kept.max_parallel)
    // Numbers and their digits stay accepted (LiteLLM's clients send both).
    const digits = await litellm('/key/generate', { user_id: 'ops-s25@test.local', rpm_limit: '12', tpm_limit: 3000, max_parallel_requests: '2' })
    assert.equal(digits.status, 200, JSON.stringify(digits.body))
    assert.equal(digits.body.rpm_limit, 12)
    const patched = await adminApi('PATCH', `/keys/${made.body.id}`, adminKey, { rpm: '9', tpm: 100, max_parallel_requests: null })
    assert.equal(patched.status, 200, JSON.stringify(patched.body))
    assert.equal(patched.body.rpm, 9)
  })

  test('channel numbers and redemption-code counts given loosely are refused, not read as 16, 1000, 1 or 0', async ({ assert }) => {
    const base = { provider: 'custom', base_url: 'http://127.0.0.1:9', models: ['s25-*'] }
    for (const value of LOOSE) {
      for (const field of ['priority', 'weight', 'connect_timeout_ms']) {
        const refused = await adminApi('POST', '/channels', adminKey, { ...base, name: `loose-${field}`, [field]: value })
        assert.equal(refused.status, 400, `${field}=${JSON.stringify(value)}: ${JSON.stringify(refused.body)}`)
        assert.equal(refused.body.error.code, 'invalid_field')
      }
      for (const field of ['count', 'expires_in_days']) {
        const refused = await adminApi('POST', '/redemption-codes', adminKey, { batch: 'loose', per_code: '1', [field]: value })
        assert.equal(refused.status, 400, `${field}=${JSON.stringify(value)}: ${JSON.stringify(refused.body)}`)
      }
    }
    assert.lengthOf(await db.from('channels').whereLike('name', 'loose-%'), 0)
    assert.lengthOf(await db.from('redemption_codes').where('batch', 'loose'), 0)
    const made = await adminApi('POST', '/channels', adminKey, { ...base, name: 'typed', priority: '-3', weight: '4', connect_timeout_ms: 2000 })
    assert.equal(made.status, 201, JSON.stringify(made.body))
    assert.equal(made.body.priority, -3)
    assert.equal(made.body.weight, 4)
    const patched = await adminApi('PATCH', `/channels/${made.body.id}`, adminKey, { priority: '-0x1' })
    assert.equal(patched.status, 400)
    const codes = await adminApi('POST', '/redemption-codes', adminKey, { batch: 'typed', per_code: '1', count: '2' })
    assert.equal(codes.status, 201, JSON.stringify(codes.body))
    assert.lengthOf(codes.body.codes, 2)
  })

  test('list filters and cursors that are no id are a 400 naming them, not every row (?user=an e-mail) or row 16 (0x10)', async ({ assert }) => {
    await createUser({ email: 'other-s25@test.local', password: 'other-password' })
    const other = await db.from('users').where('email', 'other-s25@test.local').firstOrFail()
    await createApiKey({ userRef: 'other-s25@test.local', name: 'other-key' })
    for (const [path, name] of [
      ['/keys?user=ops-s25@test.local', 'user'],
      ['/keys?user=0x1', 'user'],
      ['/keys?before=0x10', 'before'],
      ['/users?before=1e3', 'before'],
      ['/usage?before=true', 'before'],
      ['/payments?user_id=abc', 'user_id'],
      ['/redemption-codes?before=%205', 'before'],
    ]) {
      const refused = await adminApi('GET', path, adminKey)
      assert.equal(refused.status, 400, `${path}: ${JSON.stringify(refused.body).slice(0, 200)}`)
      assert.equal(refused.body.error.param, name, path)
    }
    const mine = await adminApi('GET', `/keys?user=${other.id}&before=`, adminKey)
    assert.equal(mine.status, 200)
    assert.deepEqual(mine.body.data.map((k: any) => k.name), ['other-key'])
    for (const query of ['page=0x2', 'size=1e1', 'page=%201']) {
      const listed = await fetch(`${baseUrl()}/key/list?${query}`, { headers: { authorization: `Bearer ${adminKey}` } })
      assert.equal(listed.status, 400, query)
    }
    const logs = await fetch(`${baseUrl()}/spend/logs?page_size=0x10`, { headers: { authorization: `Bearer ${adminKey}` } })
    assert.equal(logs.status, 400)
  })

  test('disabling a redemption code by an id that is no id ("0x1", true, [1]) disables nothing', async ({ assert }) => {
    const made = await adminApi('POST', '/redemption-codes', adminKey, { batch: 'keep', per_code: '1', count: 2 })
    assert.equal(made.status, 201)
    const first = made.body.codes[0].id
    for (const id of [`0x${first.toString(16)}`, true, [first], `${first}.0`, 'abc']) {
      const refused = await adminApi('POST', '/redemption-codes/disable', adminKey, { id })
      assert.equal(refused.status, 400, `${JSON.stringify(id)}: ${JSON.stringify(refused.body)}`)
      assert.equal(refused.body.error.param, 'id')
    }
    assert.lengthOf(await db.from('redemption_codes').where('batch', 'keep').whereNotNull('disabled_at'), 0)
    const disabled = await adminApi('POST', '/redemption-codes/disable', adminKey, { id: String(first) })
    assert.equal(disabled.status, 200)
    assert.equal(disabled.body.disabled.length ?? disabled.body.disabled, 1)
  })

  test('/utils/token_counter: messages of the wrong shape are a 400 naming them, not a count of framing', async ({ assert }) => {
    const { key } = await createApiKey({ userRef: 'ops-s25@test.local', name: 'counter' })
    const count = async (body: unknown) => {
      const response = await fetch(`${baseUrl()}/utils/token_counter`, {
        method: 'POST',
        headers: { 'authorization': `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      })
      return { status: response.status, body: (await response.json()) as any }
    }
    for (const [messages, param] of [
      [[1], 'messages[0]'],
      [[{ role: 'user', content: 'hi' }, null], 'messages[1]'],
      [['hi'], 'messages[0]'],
      [[[{ role: 'user', content: 'hi' }]], 'messages[0]'],
      [[{ role: 'user', content: 5 }], 'messages[0].content'],
      [[{ role: 'user', content: { text: 'hi' } }], 'messages[0].content'],
      [[{ role: 'assistant', tool_calls: { function: { name: 'f' } } }], 'messages[0].tool_calls'],
      [[{ role: 'user', content: 'x', name: 5 }], 'messages[0].name'],
    ] as const) {
      const refused = await count({ model: 'gpt-4o', messages })
      assert.equal(refused.status, 400, `${JSON.stringify(messages)}: ${JSON.stringify(refused.body)}`)
      assert.equal(refused.body.error.param, param)
    }
    // Parts that carry no text (an image) and tool calls are counted as before.
    const counted = await count({
      model: 'gpt-4o',
      messages: [
        { role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } }, { type: 'text', text: 'hi' }] },
        { role: 'assistant', content: null, tool_calls: [{ function: { name: 'f', arguments: '{}' } }] },
      ],
    })
    assert.equal(counted.status, 200, JSON.stringify(counted.body))
    assert.isAbove(counted.body.total_tokens, 6)
  })
})

function jsonl(ids: string[]): Buffer {
  const lines = ids.map((id) =>
    JSON.stringify({ custom_id: id, method: 'POST', url: '/v1/chat/completions', body: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], max_tokens: 50 } })
  )
  return Buffer.from(`${lines.join('\n')}\n`, 'utf8')
}

test.group('Hostile input (s25): batch custom ids', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'openai', provider: 'openai', baseUrl: mock.url, models: ['gpt-4o-mini'] })
    await setPrice({ model: 'gpt-4o-mini', input: '2', output: '8' })
    await refreshCaches()
    return () => mock.stop()
  })

  test('custom ids that differ only in lone surrogates are refused at upload: their digests were one, so only one line was billed', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const client = openai(user.key)
    // Every lone surrogate is U+FFFD in UTF-8: 'x\ud800' and 'x\ud801' were two ids with one digest.
    for (const ids of [['x\ud800', 'x\ud801'], ['\udc00'], ['ok', 'pair-\ud83d']]) {
      const refused = await client.files.create({ file: await toFile(jsonl(ids), 'requests.jsonl'), purpose: 'batch' }).catch((error) => error)
      assert.equal(refused.status, 400, JSON.stringify(ids))
      assert.match(refused.error.message, /custom_id/)
    }
    // Unicode ids that are text (an emoji's pair, CJK, 200 characters) are kept as before.
    const kept = await client.files.create({ file: await toFile(jsonl(['\ud83d\ude00', '中文', 'é'.repeat(200)]), 'requests.jsonl'), purpose: 'batch' })
    assert.equal(kept.status ?? 'processed', 'processed')
    // A repeated id with a NUL in it is refused as a repeat (400), not a 500 storing the message.
    const repeated = await client.files.create({ file: await toFile(jsonl(['a\u0000b', 'a\u0000b']), 'requests.jsonl'), purpose: 'batch' }).catch((error) => error)
    assert.equal(repeated.status, 400)
  })

  test("a key moved to another team, or its team deleted, while its batches run: each hold is released from the team it was taken on, once", async ({ assert }) => {
    const gw = await gateway()
    const user = await seedUser({ balance: '10' })
    const first = await createTeam({ alias: 's25-first', maxBudget: '5' })
    const second = await createTeam({ alias: 's25-second', maxBudget: '5' })
    await setKeyTeam(String(user.keyId), first.id)
    await refreshCaches()
    const client = openai(user.key)
    const file = await client.files.create({ file: await toFile(jsonl(['m-0', 'm-1']), 'requests.jsonl'), purpose: 'batch' })
    const create = () => client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h', metadata: { mock_polls: '2' } })
    const one = await create()
    const teamOne = gw.catalog.teams.get(Number(first.id))!
    const teamTwo = gw.catalog.teams.get(Number(second.id))!
    const hold = teamOne.heldPico
    assert.isAbove(Number(hold), 0)

    // Moved: the running batch stays held (and billed) on the first team; a new one is held on the second.
    await setKeyTeam(String(user.keyId), second.id)
    await refreshCaches()
    const two = await create()
    assert.equal(teamOne.heldPico, hold)
    assert.equal(teamTwo.heldPico, hold)
    assert.equal(gw.batches.holds.heldFor(user.userId), 2n * hold)

    // The second team deleted while its batch runs: the batch bills its owner only, its hold leaves no trace.
    await deleteTeams([second.id])
    await refreshCaches()
    assert.isNull((await db.from('batch_objects').where('public_id', two.id).first()).team_id)
    for (let i = 0; i < 3; i++) {
      await client.batches.retrieve(one.id)
      await client.batches.retrieve(two.id)
    }
    await gw.batches.sweep()
    const rows = await db.from('usage_records').where('user_id', user.userId).where('endpoint', 'batch').orderBy('id')
    assert.lengthOf(rows, 2)
    assert.equal(teamOne.heldPico, 0n, 'released once from the first team')
    assert.equal(teamTwo.heldPico, 0n, 'released once from the deleted team')
    assert.equal(gw.batches.holds.heldFor(user.userId), 0n)
    assert.equal((await db.from('teams').where('id', first.id).first()).spent, rows[0].cost, 'the first bill in the first team')
    // A sweep after: nothing held again, nothing billed twice.
    await gw.batches.sweep()
    assert.equal(teamOne.heldPico, 0n)
    assert.lengthOf(await db.from('usage_records').where('user_id', user.userId).where('endpoint', 'batch'), 2)
  })

  test("a batch of a team this instance has not heard of yet (made on another instance) is held on that team's budget at the next sync", async ({ assert }) => {
    const gw = await gateway()
    const user = await seedUser({ balance: '10' })
    await refreshCaches()
    // Another instance's team whose notice never came: inserted with the change trigger off.
    const teamId = await db.transaction(async (trx) => {
      await trx.rawQuery('SET LOCAL session_replication_role = replica')
      const [row] = await trx.table('teams').insert({ alias: 's25-unheard', max_budget: '5' }).returning('id')
      return Number(row.id)
    })
    assert.isUndefined(gw.catalog.teams.get(teamId), 'not loaded here')
    const [batch] = await db
      .table('batch_objects')
      .insert({ kind: 'batch', public_id: 'batch_s25_unheard', upstream_id: 'batch_up_s25', user_id: user.userId, api_key_id: user.keyId, status: 'in_progress', hold: '0.5', team_id: teamId })
      .returning('id')
    await gw.batches.holds.sync()
    const team = gw.catalog.teams.get(teamId)
    assert.exists(team, 'read when a batch named it')
    assert.equal(team!.heldPico, toPico('0.5'), "the other instance's batch holds on the team's budget here too")
    // Billed elsewhere: the next sync releases it from the team.
    await db.from('batch_objects').where('id', batch.id).update({ billed_at: new Date() })
    await new Promise((resolve) => setTimeout(resolve, 5))
    await gw.batches.holds.sync()
    assert.equal(team!.heldPico, 0n)
    assert.equal(gw.batches.holds.heldFor(user.userId), 0n)
  })
})

