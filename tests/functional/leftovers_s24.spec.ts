import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import OpenAI, { toFile } from 'openai'
import { setPrice } from '#actions/set_price'
import { createTeam, setKeyTeam } from '#actions/teams'
import { toPico } from '#gateway/metering/money'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { anthropic } from '#tests/clients'
import ace from '@adonisjs/core/services/ace'
import ChannelCreate from '#commands/channel_create'
import PlanCreate from '#commands/plan_create'
import { createUser } from '#actions/create_user'
import { createPlan } from '#actions/create_plan'
import { PanelClient, textOf } from '#tests/panel_client'
import { countChatPromptTokens, countTokens } from '#gateway/metering/tokenizer'
import { baseUrl, gateway, openai, post, refreshCaches, resetDatabase, seedChannel, seedUser, startMock, usageRows } from '#tests/helpers'

/**
 * Leftovers of the 24th pass: billing exactness of batches (each custom id's
 * usage once, none of an id the batch never had) and batches under a team's
 * budget.
 */

function jsonl(ids: string[], model = 'gpt-4o-mini'): Buffer {
  const lines = ids.map((id) =>
    JSON.stringify({ custom_id: id, method: 'POST', url: '/v1/chat/completions', body: { model, messages: [{ role: 'user', content: id }], max_tokens: 50 } })
  )
  return Buffer.from(`${lines.join('\n')}\n`, 'utf8')
}

function messageRequests(ids: string[]) {
  return ids.map((id) => ({ custom_id: id, params: { model: 'claude-sonnet-4', max_tokens: 50, messages: [{ role: 'user' as const, content: id }] } }))
}

async function upload(client: OpenAI, bytes: Buffer) {
  return client.files.create({ file: await toFile(bytes, 'requests.jsonl'), purpose: 'batch' })
}

/** An OpenAI batch of `ids`, run to its end; `tamper` changes the upstream's copy of the input before it answers (the output's lines). */
async function openaiBatch(mock: MockUpstream, client: OpenAI, ids: string[], tamper?: (text: string) => string) {
  const file = await upload(client, jsonl(ids))
  const batch = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h', metadata: { mock_polls: '1' } })
  assert(await client.batches.retrieve(batch.id), 'in_progress')
  if (tamper) {
    const stored = mock.batches.files.get([...mock.batches.batches.values()].at(-1)!.input_file_id)!
    stored.bytes = Buffer.from(tamper(stored.bytes.toString('utf8')))
  }
  assert(await client.batches.retrieve(batch.id), 'completed')
  return batch
}

function assert(batch: { status: string }, status: string) {
  if (batch.status !== status) throw new Error(`batch is ${batch.status}, expected ${status}`)
}

test.group('Batch bills: each custom id once', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'openai', provider: 'openai', baseUrl: mock.url, models: ['gpt-4o-mini'] })
    await seedChannel({ name: 'claude', provider: 'anthropic', baseUrl: mock.url, models: ['claude-sonnet-4'] })
    await setPrice({ model: 'gpt-4o-mini', input: '2', output: '8' })
    await setPrice({ model: 'claude-sonnet-4', input: '3', output: '15' })
    await refreshCaches()
    return () => mock.stop()
  })

  test('an OpenAI batch output repeating a custom id, or naming one the batch never had, is billed for the batch\'s own lines once', async ({ assert: a }) => {
    const gw = await gateway()
    const clean = await seedUser({ balance: '1' })
    await openaiBatch(mock, openai(clean.key), ['c-0', 'c-1'])
    const [reference] = await usageRows(clean.userId)

    const user = await seedUser({ balance: '1' })
    // The upstream answers line 0 twice and a line the client never sent (its usage: lines 2 and 3 of the mock's).
    await openaiBatch(mock, openai(user.key), ['c-0', 'c-1'], (text) => {
      const [first] = text.split('\n')
      return `${text}${first}\n${first.replace('"c-0"', '"c-999"')}\n`
    })
    const upstreamOutput = [...mock.batches.files.values()].at(-1)!.bytes.toString().trim().split('\n')
    a.deepEqual(upstreamOutput.map((l) => JSON.parse(l).custom_id), ['c-0', 'c-1', 'c-0', 'c-999'], 'the upstream did repeat and invent')
    await gw.batches.sweep()
    const rows = await usageRows(user.userId)
    a.lengthOf(rows, 1)
    a.include(rows[0], { prompt_tokens: reference.prompt_tokens, completion_tokens: reference.completion_tokens, cost: reference.cost })
  })

  test('a message batch whose results repeat a custom id or name another is billed for its own requests once', async ({ assert: a }) => {
    const gw = await gateway()
    const clean = await seedUser({ balance: '1' })
    const cleanClient = anthropic(clean.key)
    const first = await cleanClient.messages.batches.create({ requests: messageRequests(['m-0', 'm-1']), mock_polls: 0 } as any)
    await cleanClient.messages.batches.retrieve(first.id)
    const [reference] = await usageRows(clean.userId)
    a.isDefined(reference)

    const user = await seedUser({ balance: '1' })
    const client = anthropic(user.key)
    const batch = await client.messages.batches.create({ requests: messageRequests(['m-0', 'm-1']), mock_polls: 1 } as any)
    const upstream = [...mock.messageBatches.batches.values()].at(-1)!
    // Its results will hold m-0 twice and an m-2 nobody asked for (the mock answers each of its requests).
    upstream.requests.push(upstream.requests[0], { ...upstream.requests[1], custom_id: 'm-2' })
    await client.messages.batches.retrieve(batch.id)
    const ended = await client.messages.batches.retrieve(batch.id)
    a.equal(ended.processing_status, 'ended')
    a.lengthOf(upstream.results, 4)
    await gw.batches.sweep()
    const rows = await usageRows(user.userId)
    a.lengthOf(rows, 1)
    a.include(rows[0], { prompt_tokens: reference.prompt_tokens, completion_tokens: reference.completion_tokens, cost: reference.cost })
  })
})

test.group('Batches and team budgets', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'openai', provider: 'openai', baseUrl: mock.url, models: ['gpt-4o-mini'] })
    await seedChannel({ name: 'claude', provider: 'anthropic', baseUrl: mock.url, models: ['claude-sonnet-4'] })
    await setPrice({ model: 'gpt-4o-mini', input: '2', output: '8' })
    await setPrice({ model: 'claude-sonnet-4', input: '3', output: '15' })
    await refreshCaches()
    return () => mock.stop()
  })

  test("a batch's hold counts against its key's team budget (402 past it) and its bill in the team's spend", async ({ assert: a }) => {
    const gw = await gateway()
    const user = await seedUser({ balance: '10' })
    // Two requests of max_tokens 50: a hold of about 0.0004 USD at half price; the budget leaves less.
    const tight = await createTeam({ alias: 'tight', maxBudget: '0.0001' })
    await setKeyTeam(String(user.keyId), tight.id)
    await refreshCaches()
    const client = openai(user.key)
    const file = await upload(client, jsonl(['t-0', 't-1']))
    const refused = await client.batches
      .create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' })
      .then(() => null, (error) => error)
    a.equal(refused?.status, 402)
    a.equal(refused?.error?.code, 'spend_limit_exceeded')
    a.include(refused?.error?.message, "team 'tight'")
    const messages = await anthropic(user.key)
      .messages.batches.create({ requests: messageRequests(['t-0', 't-1']) })
      .then(() => null, (error) => error)
    a.equal(messages?.status, 402)
    a.lengthOf(mock.batches.batches, 0, 'nothing made upstream')

    // A roomy team: the hold is on it while the batch runs, its bill in the team's spend after.
    const roomy = await createTeam({ alias: 'roomy', maxBudget: '5' })
    await setKeyTeam(String(user.keyId), roomy.id)
    await refreshCaches()
    const batch = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h', metadata: { mock_polls: '1' } })
    const team = gw.catalog.teams.get(Number(roomy.id))!
    const held = gw.batches.holds.heldFor(user.userId)
    a.isAbove(Number(held), 0)
    a.equal(team.heldPico, held, "the batch's hold is on the team's budget")
    a.equal((await db.from('batch_objects').where('public_id', batch.id).first()).team_id, String(roomy.id))
    await client.batches.retrieve(batch.id)
    await client.batches.retrieve(batch.id)
    const [row] = await usageRows(user.userId)
    a.equal(row.endpoint, 'batch')
    a.equal(team.heldPico, 0n, 'released with the bill')
    a.equal(team.spentPico, toPico(row.cost), "the bill is in the team's spend (cache)")
    a.equal((await db.from('teams').where('id', roomy.id).first()).spent, row.cost, "and in the team's row")
  })
})

test.group("LiteLLM's POST /utils/token_counter", (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'mapped', provider: 'openai', baseUrl: mock.url, models: ['gpt-4o-mini', 'alias-model'], modelMapping: { 'alias-model': 'gpt-4o-2024' } })
    await refreshCaches()
    return () => mock.stop()
  })

  test('counts messages or a prompt with the gateway tokenizer, in LiteLLM\'s shape; a key is required; errors in LiteLLM\'s shape', async ({ assert: a }) => {
    const user = await seedUser({ keyModels: ['gpt-4o-mini', 'alias-model', 'unserved-*'] })
    const auth = { authorization: `Bearer ${user.key}` }
    const messages = [
      { role: 'system', content: 'You are terse.' },
      { role: 'user', content: 'How many tokens is this sentence?' },
    ]
    const counted = await post('/utils/token_counter', { model: 'alias-model', messages }, auth)
    a.equal(counted.status, 200, await counted.clone().text())
    a.deepEqual(await counted.json(), {
      total_tokens: await countChatPromptTokens(messages),
      request_model: 'alias-model',
      model_used: 'gpt-4o-2024',
      tokenizer_type: 'openai_tokenizer',
      original_response: null,
      error: false,
      error_message: null,
      status_code: null,
    })
    const prompt = await (await post('/utils/token_counter', { model: 'gpt-4o-mini', prompt: 'Hello there, world' }, auth)).json()
    a.include(prompt, { total_tokens: await countTokens('Hello there, world'), request_model: 'gpt-4o-mini', model_used: 'gpt-4o-mini' })
    const unserved = await (await post('/utils/token_counter', { model: 'unserved-1', prompt: 'hi' }, auth)).json()
    a.include(unserved, { model_used: 'unserved-1' })

    const anonymous = await post('/utils/token_counter', { model: 'gpt-4o-mini', prompt: 'hi' })
    a.equal(anonymous.status, 401)
    a.match(anonymous.headers.get('content-type') ?? '', /json/)
    const missing = await post('/utils/token_counter', { model: 'gpt-4o-mini' }, auth)
    a.equal(missing.status, 400)
    const error = ((await missing.json()) as any).error
    a.include(error.message, 'prompt or messages')
    a.equal(error.type, 'bad_request_error', "LiteLLM's error type")
    const refused = await post('/utils/token_counter', { model: 'gpt-4o', prompt: 'hi' }, auth)
    a.equal(refused.status, 403)
    a.equal(((await refused.json()) as any).error.type, 'auth_error')
    const badJson = await post('/utils/token_counter', '{not json', auth)
    a.equal(badJson.status, 400)
    a.match(badJson.headers.get('content-type') ?? '', /json/)
  })
})

/** The text of a field's error (form/field.edge: <small id="f-NAME-error">). */
function fieldError(html: string, name: string) {
  const match = html.match(new RegExp(`id="f-${name}-error">([^<]*)<`))
  return match ? textOf(match[1]).trim() : null
}

test.group('Numbers in digits only', (group) => {
  group.setup(async () => {
    await resetDatabase()
  })

  test("the panel's key, plan, team and channel forms refuse 0x10, 1e3 and the like, naming the field", async ({ assert: a }) => {
    await createUser({ email: 'digits-admin@test.local', password: 'admin-password', role: 'admin' })
    const owner = await createUser({ email: 'digits-owner@test.local' })
    const plan = await createPlan({ name: 'digits-plan' })
    const client = new PanelClient()
    await client.login('digits-admin@test.local', 'admin-password')

    for (const rpm of ['0x10', '1e3', '16.', '+16', '0b1']) {
      await client.get('/admin/plans/new')
      const planForm = await client.follow(await client.post('/admin/plans', { name: `p-${rpm}`, rpm }))
      a.equal(fieldError(planForm.html, 'rpm'), 'Requests per minute must be a whole number.', `plan rpm ${rpm}`)
    }
    a.lengthOf(await db.from('plans').whereLike('name', 'p-%'), 0)

    await client.get('/admin/keys/new')
    const keyForm = await client.follow(await client.post('/admin/keys', { user: owner.user.email, name: 'k', rpm: '0x10', tpm: '1e3' }))
    a.equal(fieldError(keyForm.html, 'rpm'), 'Requests per minute must be a whole number.')
    a.isNotNull(fieldError(keyForm.html, 'tpm'))
    a.lengthOf(await db.from('api_keys').where('user_id', owner.user.id), 0)

    await client.get('/admin/teams/new')
    const teamForm = await client.follow(await client.post('/admin/teams', { alias: 'digits', rpm: '1e3' }))
    a.include(textOf(teamForm.html), 'must be a whole number')
    a.lengthOf(await db.from('teams').where('alias', 'digits'), 0)

    await client.get('/admin/channels/new')
    const channelForm = await client.follow(
      await client.post('/admin/channels', { name: 'digits-ch', provider: 'custom', baseUrl: 'http://127.0.0.1:9/v1', models: 'm', planIds: [`0x${plan.id.toString(16)}`] })
    )
    a.include(textOf(channelForm.html), 'must be a whole number')
    a.lengthOf(await db.from('channels').where('name', 'digits-ch'), 0)

    // Digits still work.
    await client.get('/admin/plans/new')
    await client.follow(await client.post('/admin/plans', { name: 'plain', rpm: '16' }))
    a.equal((await db.from('plans').where('name', 'plain').first())?.rpm, 16)
  })

  test('list limits take digits only: input_items, batches, files, message batches (400 naming limit)', async ({ assert: a }) => {
    const user = await seedUser()
    const auth = { authorization: `Bearer ${user.key}`, 'x-api-key': user.key, 'anthropic-version': '2023-06-01' }
    for (const path of ['/v1/responses/resp_none/input_items', '/v1/batches', '/v1/files', '/v1/messages/batches']) {
      for (const query of ['limit=0x10', 'limit=1e1', 'limit[]=5', 'limit=%205']) {
        const answer = await fetch(`${baseUrl()}${path}?${query}`, { headers: auth })
        a.equal(answer.status, 400, `${path}?${query}`)
        const body: any = await answer.json()
        const error = body.error
        a.isTrue(error.param === 'limit' || /limit/.test(error.message), `${path}?${query}: ${JSON.stringify(body)}`)
      }
      const plain = await fetch(`${baseUrl()}${path}?limit=5`, { headers: auth })
      a.notEqual(plain.status, 400, `${path}?limit=5`)
    }
  })
})

test.group('channel:create --plans', (group) => {
  group.setup(async () => {
    await resetDatabase()
  })

  async function run(command: any, args: string[]) {
    const instance = await ace.create(command, args)
    ace.ui.switchMode('raw')
    await instance.exec()
    return instance
  }

  test('an empty list given explicitly is refused, not a channel open to every plan; numeric flags take digits only', async ({ assert: a }) => {
    for (const plans of [' ', ',', ' , ']) {
      const refused = await run(ChannelCreate, ['--name', 'blank-plans', '--provider', 'custom', '--base-url', 'http://127.0.0.1:9/v1', '--models', 'm', '--plans', plans])
      refused.assertFailed()
      refused.assertLog('[ red(error) ] --plans: name at least one plan (leave the flag out for a channel open to every plan)', 'stderr')
    }
    a.lengthOf(await db.from('channels').where('name', 'blank-plans'), 0)

    ;(await run(PlanCreate, ['--name', 'hex', '--rpm', '0x10'])).assertFailed()
    a.lengthOf(await db.from('plans').where('name', 'hex'), 0)
    ;(await run(ChannelCreate, ['--name', 'hex-priority', '--provider', 'custom', '--base-url', 'http://127.0.0.1:9/v1', '--models', 'm', '--priority', '1e1'])).assertFailed()

    ;(await run(PlanCreate, ['--name', 'gold'])).assertSucceeded()
    ;(await run(ChannelCreate, ['--name', 'gold-only', '--provider', 'custom', '--base-url', 'http://127.0.0.1:9/v1', '--models', 'm', '--plans', 'gold', '--priority', '-2'])).assertSucceeded()
    const channel = await db.from('channels').where('name', 'gold-only').first()
    a.lengthOf(channel.plan_ids, 1)
    a.equal(channel.priority, -2)
    ;(await run(ChannelCreate, ['--name', 'every-plan', '--provider', 'custom', '--base-url', 'http://127.0.0.1:9/v1', '--models', 'm'])).assertSucceeded()
    a.isNull((await db.from('channels').where('name', 'every-plan').first()).plan_ids)
  })
})
