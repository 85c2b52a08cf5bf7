import { test } from '@japa/runner'
import { DateTime } from 'luxon'
import db from '@adonisjs/lucid/services/db'
import { toFile } from 'openai'
import { createUser } from '#actions/create_user'
import { createApiKey } from '#actions/issue_api_key'
import { setPrice } from '#actions/set_price'
import { createTeam, setKeyTeam } from '#actions/teams'
import { toPico } from '#gateway/metering/money'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { baseUrl, gateway, openai, post, refreshCaches, resetDatabase, seedChannel, seedPrice, seedUser, startMock, usageRows } from '#tests/helpers'

/**
 * Each usage row keeps the team its request was admitted under
 * (usage_records.team_id, migration 1011): a key moved from one team to
 * another leaves its past spend with the first, in the spend report by team
 * (rows of today and the rollups of finished days) and in a team budget's new
 * period; a batch's bill carries the team the batch was made under.
 */
let adminKey = ''

async function litellm(method: string, path: string, body?: unknown) {
  const response = await fetch(`${baseUrl()}${path}`, {
    method,
    headers: { authorization: `Bearer ${adminKey}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  return { status: response.status, body: (await response.json()) as any }
}

async function chat(key: string) {
  const response = await post('/v1/chat/completions', { model: 'team-model', messages: [{ role: 'user', content: 'hi' }] }, { authorization: `Bearer ${key}` })
  await response.text()
  return response.status
}

/** Moves a key between teams the way a LiteLLM script does (/key/update team_id), and waits until the gateway uses it. */
async function moveKey(keyId: number, teamId: number | null) {
  const answer = await litellm('POST', '/key/update', { key: String(keyId), team_id: teamId === null ? null : String(teamId) })
  if (answer.status !== 200) throw new Error(JSON.stringify(answer.body))
  await refreshCaches()
}

/** The rows metered so far move to yesterday (UTC), as if made then: a finished day, read from its rollup. */
async function makeYesterday(ids: number[]) {
  await (await gateway()).meter.drain()
  await db.from('usage_records').whereIn('id', ids).update({ created_at: DateTime.utc().minus({ days: 1 }).startOf('day').plus({ hours: 12 }).toJSDate() })
}

test.group('Usage rows keep their team', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'mock', baseUrl: mock.url, models: ['*'] })
    // 12 prompt and 5 completion tokens a call (the mock's usage): $0.012 + $0.010 = $0.022.
    await seedPrice('team-model', '1000', '2000')
    await createUser({ email: 'ops@team-rows.local', password: 'password123', role: 'admin' })
    adminKey = (await createApiKey({ userRef: 'ops@team-rows.local', name: 'litellm-master', manage: true })).key
    await refreshCaches()
    return () => mock.stop()
  })

  test('the meter writes the team the request was admitted under; a key in no team writes NULL', async ({ assert }) => {
    const team = await createTeam({ alias: 'rows-team' })
    const inTeam = await seedUser({ balance: '5' })
    const alone = await seedUser({ balance: '5' })
    await setKeyTeam(String(inTeam.keyId), team.id)
    await refreshCaches()
    assert.equal(await chat(inTeam.key), 200)
    assert.equal(await chat(alone.key), 200)
    assert.equal(Number((await usageRows(inTeam.userId))[0].team_id), team.id)
    assert.isNull((await usageRows(alone.userId))[0].team_id)
  })

  test('/global/spend/report?group_by=team after a key moved: the first team keeps its past spend, the second counts from the move', async ({ assert }) => {
    const first = await createTeam({ alias: 'report-first' })
    const second = await createTeam({ alias: 'report-second' })
    const user = await seedUser({ balance: '5' })
    await moveKey(user.keyId, first.id)
    // Yesterday under the first team (a finished day: the report reads its rollup).
    assert.equal(await chat(user.key), 200)
    await makeYesterday((await usageRows(user.userId)).map((r) => r.id))
    // Today: one call under the first team, then the key moves and one under the second.
    assert.equal(await chat(user.key), 200)
    await moveKey(user.keyId, second.id)
    assert.equal(await chat(user.key), 200)
    await (await gateway()).meter.drain()

    const from = DateTime.utc().minus({ days: 1 }).toISODate()
    const to = DateTime.utc().toISODate()
    const report = await litellm('GET', `/global/spend/report?group_by=team&start_date=${from}&end_date=${to}`)
    assert.equal(report.status, 200, JSON.stringify(report.body))
    const spend = (day: string, alias: string) =>
      report.body.find((d: any) => d.group_by_day === day)?.teams.find((t: any) => t.team_name === alias)?.total_spend ?? 0
    assert.equal(spend(from, 'report-first'), 0.022)
    assert.equal(spend(from, 'report-second'), 0, 'yesterday the key was not in the second team')
    assert.equal(spend(to, 'report-first'), 0.022)
    assert.equal(spend(to, 'report-second'), 0.022)

    // LiteLLM's spend logs name each row's team, newest first.
    const logs = await litellm('GET', `/spend/logs?api_key=${user.keyId}&start_date=${from}&end_date=${to}`)
    assert.deepEqual(logs.body.map((r: any) => r.team_id), [String(second.id), String(first.id), String(first.id)])

    // The key moved again: what it spent in each team stays there.
    await moveKey(user.keyId, null)
    const again = await litellm('GET', `/global/spend/report?group_by=team&start_date=${from}&end_date=${to}`)
    assert.deepEqual(again.body, report.body)
  })

  test('a team budget period set after a key joined from another team counts only the rows made under it', async ({ assert }) => {
    const joined = await createTeam({ alias: 'period-joined' })
    const left = await createTeam({ alias: 'period-left' })
    const regular = await seedUser({ balance: '5' })
    const newcomer = await seedUser({ balance: '5' })
    await moveKey(regular.keyId, joined.id)
    await moveKey(newcomer.keyId, left.id)
    // The team's own spend: two calls yesterday (its lifetime spend $0.044, none of it today).
    assert.equal(await chat(regular.key), 200)
    assert.equal(await chat(regular.key), 200)
    await makeYesterday((await usageRows(regular.userId)).map((r) => r.id))
    // Today the newcomer spends $0.022 in the other team, then joins.
    assert.equal(await chat(newcomer.key), 200)
    await moveKey(newcomer.keyId, joined.id)
    await (await gateway()).meter.drain()

    // A daily budget set now starts at what the team spent today: nothing (the newcomer's call was the other team's).
    assert.equal((await litellm('POST', '/team/update', { team_id: String(joined.id), max_budget: 1, budget_duration: '1d' })).status, 200)
    const after = await db.from('teams').where('id', joined.id).first()
    assert.equal(toPico(String(after.period_spent)), 0n)
    assert.equal(toPico(String(after.spent)), toPico('0.044'))
    // The team the key left keeps its call in a period set now, though the key is no longer in it.
    assert.equal((await litellm('POST', '/team/update', { team_id: String(left.id), max_budget: 1, budget_duration: '1d' })).status, 200)
    assert.equal(toPico(String((await db.from('teams').where('id', left.id).first()).period_spent)), toPico('0.022'))
    // From the move on, the newcomer's calls count for the team it joined.
    assert.equal(await chat(newcomer.key), 200)
    await (await gateway()).meter.drain()
    assert.equal(toPico(String((await db.from('teams').where('id', joined.id).first()).period_spent)), toPico('0.022'))
  })
})

function jsonl(ids: string[]): Buffer {
  const lines = ids.map((id) =>
    JSON.stringify({ custom_id: id, method: 'POST', url: '/v1/chat/completions', body: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], max_tokens: 50 } })
  )
  return Buffer.from(`${lines.join('\n')}\n`, 'utf8')
}

test.group('Usage rows keep their team: batches', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'openai', provider: 'openai', baseUrl: mock.url, models: ['gpt-4o-mini'] })
    await setPrice({ model: 'gpt-4o-mini', input: '2', output: '8' })
    await refreshCaches()
    return () => mock.stop()
  })

  test('a batch bill carries the team the batch was made under, though the key moved meanwhile', async ({ assert }) => {
    const gw = await gateway()
    const user = await seedUser({ balance: '10' })
    const first = await createTeam({ alias: 'batch-first' })
    const second = await createTeam({ alias: 'batch-second' })
    await setKeyTeam(String(user.keyId), first.id)
    await refreshCaches()
    const client = openai(user.key)
    const file = await client.files.create({ file: await toFile(jsonl(['b-0', 'b-1']), 'requests.jsonl'), purpose: 'batch' })
    const batch = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h', metadata: { mock_polls: '2' } })
    await setKeyTeam(String(user.keyId), second.id)
    await refreshCaches()
    for (let i = 0; i < 3; i++) await client.batches.retrieve(batch.id)
    await gw.batches.sweep()
    await gw.meter.drain()
    const rows = await db.from('usage_records').where('user_id', user.userId).where('endpoint', 'batch')
    assert.lengthOf(rows, 1)
    assert.isAbove(Number(rows[0].cost), 0)
    assert.equal(Number(rows[0].team_id), first.id)
  })
})
