import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import { createUser } from '#actions/create_user'
import { createPlan } from '#actions/create_plan'
import { createApiKey } from '#actions/issue_api_key'
import { deletePlan } from '#actions/update_plan'
import { updateChannel, currentChannelInput, type UpdateChannelInput } from '#actions/update_channel'
import { removeModelFallbacks, setModelFallbacks } from '#actions/set_model_fallbacks'
import Channel from '#models/channel'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { adminApi, baseUrl, gateway, openai, post, refreshCaches, resetDatabase, seedChannel, startMock } from '#tests/helpers'
import { PanelClient, textOf } from '#tests/panel_client'
import { toFile } from 'openai'
import ace from '@adonisjs/core/services/ace'
import ChannelCreate from '#commands/channel_create'
import { failure } from '#tests/clients'

/**
 * Channel groups (new-api's groups): a channel open only to some plans.
 * Two plans, `vip` and `basic`; a vip-only channel and an all-plans channel
 * share `shared-model`; `vip-model` only the vip channel serves.
 */

const hello = [{ role: 'user', content: 'hi' }]
let counter = 0

/** A user on the plan (null: none) with a key. */
async function userOn(plan: string | null) {
  return (await userWithEmailOn(plan)).key
}

async function userWithEmailOn(plan: string | null) {
  counter++
  const email = `groups${counter}@test.local`
  await createUser({ email, password: 'password123', plan: plan ?? undefined })
  const { key } = await createApiKey({ userRef: email })
  await refreshCaches()
  return { key, email }
}

/** Sets a saved channel's plans as an edit does (every other field as saved). */
async function setPlans(channelId: number, planIds: number[]) {
  const channel = await Channel.findOrFail(channelId)
  await updateChannel(channelId, { ...currentChannelInput(channel), planIds } as UpdateChannelInput)
  await refreshCaches()
}

function chat(key: string, model: string) {
  return post('/v1/chat/completions', { model, messages: hello }, { authorization: `Bearer ${key}` })
}

async function get(path: string, key: string, headers: Record<string, string> = {}) {
  const response = await fetch(`${baseUrl()}${path}`, { headers: { authorization: `Bearer ${key}`, ...headers } })
  return { status: response.status, body: (await response.json()) as any }
}

test.group('Channel groups: a channel open only to some plans', (group) => {
  let vipMock: MockUpstream
  let allMock: MockUpstream
  let downMock: MockUpstream
  let vipPlan: number
  let basicPlan: number

  group.setup(async () => {
    await resetDatabase()
    vipMock = await startMock({ text: 'vip answers' })
    allMock = await startMock({ text: 'everyone answers' })
    downMock = await startMock({ status: 503 })
    vipPlan = (await createPlan({ name: 'vip' })).id
    basicPlan = (await createPlan({ name: 'basic' })).id
    // Of the openai kind: the prefix table would send an unlisted gpt-like name to it (the vip-only names must not go there).
    await seedChannel({ name: 'everyone', provider: 'openai', baseUrl: allMock.url, models: ['shared-model'] })
    await seedChannel({ name: 'vip-only', baseUrl: vipMock.url, models: ['shared-model', 'vip-model', 'fail-model', 'vip-embed'], planIds: [vipPlan] })
    // Tried first for fail-model, and fails: the next candidate is the vip channel, for vip users only.
    await seedChannel({ name: 'everyone-down', baseUrl: downMock.url, models: ['fail-model', 'fallback-primary'], priority: 10 })
    return async () => {
      ;(await gateway()).health.reset()
      await vipMock.stop()
      await allMock.stop()
      await downMock.stop()
    }
  })

  test('a basic user never reaches the vip channel; a vip user reaches both', async ({ assert }) => {
    const basic = await userOn('basic')
    const vip = await userOn('vip')
    const before = vipMock.requests.length
    for (let i = 0; i < 8; i++) {
      const answer = await chat(basic, 'shared-model')
      assert.equal(answer.status, 200)
      assert.include(((await answer.json()) as any).choices[0].message.content, 'everyone answers')
    }
    assert.equal(vipMock.requests.length, before, 'the vip channel got none of the basic user’s requests')
    // The vip plan's route holds both channels (priority and weight equal: either may come first).
    const gw = await gateway()
    const ofVip = gw.service.router(gw.catalog.plans.get(vipPlan)!).route('shared-model').map((c) => c.channel.name).sort()
    assert.deepEqual(ofVip, ['everyone', 'vip-only'])
    const ofBasic = gw.service.router(gw.catalog.plans.get(basicPlan)!).route('shared-model').map((c) => c.channel.name)
    assert.deepEqual(ofBasic, ['everyone'])
    // And in practice: 24 vip requests spread over both (each 1/2; all on one: 2^-23).
    const vipBefore = vipMock.requests.length
    const allBefore = allMock.requests.length
    for (let i = 0; i < 24; i++) assert.equal((await chat(vip, 'shared-model')).status, 200)
    assert.isAbove(vipMock.requests.length, vipBefore)
    assert.isAbove(allMock.requests.length, allBefore)
    const answer = await chat(vip, 'vip-model')
    assert.equal(answer.status, 200)
    assert.include(((await answer.json()) as any).choices[0].message.content, 'vip answers')
  })

  test('a model only the vip channel serves is model_not_found for others, in OpenAI, Anthropic and Gemini formats', async ({ assert }) => {
    const basic = await userOn('basic')
    const planless = await userOn(null)
    const seenVip = vipMock.requests.length
    const seenAll = allMock.requests.length
    for (const key of [basic, planless]) {
      // The same answer as for a name no channel serves (no anthropic channel: the prefix table has none).
      const unknown = await chat(key, 'claude-nobody-serves-this')
      assert.equal(unknown.status, 404)
      assert.equal(((await unknown.json()) as any).error.code, 'model_not_found')
      const openaiAnswer = await chat(key, 'vip-model')
      assert.equal(openaiAnswer.status, 404)
      const openaiBody: any = await openaiAnswer.json()
      assert.equal(openaiBody.error.code, 'model_not_found')
      assert.notInclude(JSON.stringify(openaiBody), 'vip-only')

      const anthropic = await post('/v1/messages', { model: 'vip-model', max_tokens: 20, messages: hello }, { 'x-api-key': key, 'anthropic-version': '2023-06-01' })
      assert.equal(anthropic.status, 404)
      const anthropicBody: any = await anthropic.json()
      assert.equal(anthropicBody.type, 'error')
      assert.equal(anthropicBody.error.type, 'not_found_error')

      const gemini = await post('/v1beta/models/vip-model:generateContent', { contents: [{ role: 'user', parts: [{ text: 'hi' }] }] }, { 'x-goog-api-key': key })
      assert.equal(gemini.status, 404)
      const geminiBody: any = await gemini.json()
      assert.equal(geminiBody.error.code, 404)
      assert.equal(geminiBody.error.status, 'NOT_FOUND')

      // Embeddings route the same way.
      const embed = await post('/v1/embeddings', { model: 'vip-embed', input: 'x' }, { authorization: `Bearer ${key}` })
      assert.equal(embed.status, 404)
    }
    assert.equal(vipMock.requests.length, seenVip)
    assert.equal(allMock.requests.length, seenAll, 'not sent to an open channel of the kind by the prefix table either')
  })

  test('model lists: /v1/models (both shapes), one model, /v1beta/models, /model/info and /model_group/info list only reachable models', async ({ assert }) => {
    const basic = await userOn('basic')
    const vip = await userOn('vip')
    const ids = async (key: string) => {
      const openaiList = (await get('/v1/models', key)).body.data.map((m: any) => m.id)
      const anthropicList = (await get('/v1/models', key, { 'anthropic-version': '2023-06-01' })).body.data.map((m: any) => m.id)
      const geminiList = (await get('/v1beta/models', key)).body.models.map((m: any) => m.name.replace('models/', ''))
      const info = (await get('/model/info', key)).body.data.map((m: any) => m.model_name)
      const groups = (await get('/model_group/info', key)).body.data.map((m: any) => m.model_group)
      return { openaiList, anthropicList, geminiList, info, groups }
    }
    const ofBasic = await ids(basic)
    for (const list of Object.values(ofBasic)) {
      assert.include(list, 'shared-model')
      assert.notInclude(list, 'vip-model')
    }
    const ofVip = await ids(vip)
    for (const list of Object.values(ofVip)) assert.includeMembers(list, ['shared-model', 'vip-model'])
    assert.equal((await get('/v1/models/vip-model', basic)).status, 404)
    assert.equal((await get('/v1beta/models/vip-model', basic)).status, 404)
    assert.equal((await get('/v1/models/vip-model', vip)).status, 200)
  })

  test("the portal's Models page, Playground and /docs list only the plan's reachable models", async ({ assert }) => {
    for (const [plan, sees] of [['basic', false], ['vip', true]] as const) {
      const { email } = await userWithEmailOn(plan)
      const client = new PanelClient()
      await client.login(email, 'password123')
      for (const page of ['/dashboard/models', '/dashboard/playground', '/docs']) {
        const { status, html } = await client.get(page)
        assert.equal(status, 200, page)
        assert.include(html, 'shared-model', page)
        if (sees) assert.include(html, 'vip-model', page)
        else assert.notInclude(html, 'vip-model', page)
      }
    }
  })

  test('failover and fallbacks stay within the open channels', async ({ assert }) => {
    const basic = await userOn('basic')
    const vip = await userOn('vip')
    const seenVip = vipMock.requests.length
    // The down channel fails; for a basic user nothing else is open: its failure stands, the vip channel untouched.
    const refused = await chat(basic, 'fail-model')
    assert.equal(refused.status, 502)
    assert.equal(vipMock.requests.length, seenVip)
    ;(await gateway()).health.reset()
    const served = await chat(vip, 'fail-model')
    assert.equal(served.status, 200)
    assert.equal(vipMock.requests.length, seenVip + 1)

    // A fallback model only the vip channel serves is no fallback for a basic user.
    await setModelFallbacks({ model: 'fallback-primary', fallbacks: ['vip-model'] })
    await refreshCaches()
    ;(await gateway()).health.reset()
    assert.equal((await chat(basic, 'fallback-primary')).status, 502)
    assert.equal(vipMock.requests.length, seenVip + 1)
    ;(await gateway()).health.reset()
    const fellBack = await chat(vip, 'fallback-primary')
    assert.equal(fellBack.status, 200)
    assert.equal(((await fellBack.json()) as any).model, 'vip-model')
    await removeModelFallbacks('fallback-primary')
    await refreshCaches()
    ;(await gateway()).health.reset()
  })

  test('a channel edit reaches the route at once; deleting a plan a channel names is refused', async ({ assert }) => {
    const basic = await userOn('basic')
    assert.equal((await chat(basic, 'vip-model')).status, 404)
    const vipChannel = await Channel.findByOrFail('name', 'vip-only')
    const spare = (await createPlan({ name: 'spare' })).id
    await setPlans(vipChannel.id, [vipPlan, basicPlan, spare])
    assert.equal((await chat(basic, 'vip-model')).status, 200)
    // A plan with no users, that one channel names: refused (taking it out could open the channel to every plan).
    await assert.rejects(() => deletePlan(spare), /named by 1 channel \(vip-only\)/)
    await setPlans(vipChannel.id, [vipPlan])
    assert.equal((await chat(basic, 'vip-model')).status, 404)
    await deletePlan(spare)
    // The audit log tells of both edits.
    const audits = await db.from('audit_log').where('action', 'channel.update').where('subject_id', vipChannel.id).orderBy('id')
    assert.isAtLeast(audits.length, 2)
    assert.match(audits.at(-1).summary, /planIds/)
  })
  test('batches: an input file for a model only the vip channel serves; a batch from a file whose channel closed since', async ({ assert }) => {
    const basic = await userOn('basic')
    const vip = await userOn('vip')
    const bytes = Buffer.from(JSON.stringify({ custom_id: 'r1', method: 'POST', url: '/v1/chat/completions', body: { model: 'vip-model', messages: hello } }) + '\n')
    const refused = await failure(openai(basic).files.create({ file: await toFile(bytes, 'requests.jsonl'), purpose: 'batch' }))
    assert.equal(refused.status, 404)
    assert.equal(refused.error.code, 'model_not_found')
    const file = await openai(vip).files.create({ file: await toFile(bytes, 'requests.jsonl'), purpose: 'batch' })
    const vipChannel = await Channel.findByOrFail('name', 'vip-only')
    const elsewhere = (await createPlan({ name: 'elsewhere' })).id
    await setPlans(vipChannel.id, [elsewhere])
    const seen = vipMock.requests.length
    const closed = await failure(openai(vip).batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' }))
    assert.equal(closed.status, 503)
    assert.equal(closed.error.code, 'no_available_channel')
    assert.equal(vipMock.requests.length, seen, 'no batch made on the closed channel')
    await setPlans(vipChannel.id, [vipPlan])
    const made = await openai(vip).batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' })
    assert.equal(made.status, 'validating')
  })
})

test.group('Channel groups: stored responses held by a channel no longer open', (group) => {
  let vipMock: MockUpstream
  let allMock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    vipMock = await startMock()
    allMock = await startMock()
    return async () => {
      await vipMock.stop()
      await allMock.stop()
    }
  })

  test('a follow-up (previous_response_id) and GET of a response the closed channel holds: not found; nothing sent', async ({ assert }) => {
    const vipPlan = (await createPlan({ name: 'vip-r' })).id
    const otherPlan = (await createPlan({ name: 'other-r' })).id
    const vipChannel = await seedChannel({ name: 'vip-openai', provider: 'openai', baseUrl: vipMock.url, models: ['gpt-*'], priority: 10, planIds: [vipPlan] })
    await seedChannel({ name: 'all-openai', provider: 'openai', baseUrl: allMock.url, models: ['gpt-*'] })
    const key = await userOn('vip-r')
    const created = await openai(key).responses.create({ model: 'gpt-5', input: 'Hello' })
    assert.isTrue(vipMock.storedResponses.responses.has(created.id))
    const followUp = { model: 'gpt-5', input: 'And then?', previous_response_id: created.id }
    assert.equal((await post('/v1/responses', followUp, { authorization: `Bearer ${key}` })).status, 200)

    await setPlans(vipChannel.id, [otherPlan])
    const seenVip = vipMock.requests.length
    const seenAll = allMock.requests.length
    const refused = await post('/v1/responses', followUp, { authorization: `Bearer ${key}` })
    assert.equal(refused.status, 400)
    assert.equal(((await refused.json()) as any).error.code, 'previous_response_not_found')
    assert.equal((await get(`/v1/responses/${created.id}`, key)).status, 404)
    assert.equal(vipMock.requests.length, seenVip)
    assert.equal(allMock.requests.length, seenAll)
  })
})

test.group('Channel groups: the management API and the panel', (group) => {
  let adminKey = ''
  let mock: MockUpstream
  let vipPlan: number

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    vipPlan = (await createPlan({ name: 'vip-m' })).id
    await createPlan({ name: 'basic-m' })
    await createUser({ email: 'ops-groups@test.local', password: 'admin-password', role: 'admin' })
    adminKey = (await createApiKey({ userRef: 'ops-groups@test.local', name: 'ops', manage: true })).key
    await refreshCaches()
    return () => mock.stop()
  })

  test('plan_ids: validated (an unknown id named), saved, answered, cleared by null', async ({ assert }) => {
    const base = { name: 'api-vip', provider: 'custom', base_url: mock.url, models: ['m-*'] }
    const unknown = await adminApi('POST', '/channels', adminKey, { ...base, plan_ids: [vipPlan, 987654] })
    assert.equal(unknown.status, 400)
    assert.equal(unknown.body.error.code, 'invalid_field')
    assert.include(unknown.body.error.message, '987654')
    const wrongType = await adminApi('POST', '/channels', adminKey, { ...base, plan_ids: ['vip'] })
    assert.equal(wrongType.status, 400)
    assert.equal(await db.from('channels').where('name', 'api-vip').first(), null)

    const created = await adminApi('POST', '/channels', adminKey, { ...base, plan_ids: [vipPlan, vipPlan] })
    assert.equal(created.status, 201)
    assert.deepEqual(created.body.plan_ids, [vipPlan])
    const kept = await adminApi('PATCH', `/channels/${created.body.id}`, adminKey, { weight: 3 })
    assert.deepEqual(kept.body.plan_ids, [vipPlan], 'a PATCH without plan_ids keeps them')
    const refused = await adminApi('PATCH', `/channels/${created.body.id}`, adminKey, { plan_ids: [123456] })
    assert.equal(refused.status, 400)
    assert.include(refused.body.error.message, '123456')
    const cleared = await adminApi('PATCH', `/channels/${created.body.id}`, adminKey, { plan_ids: null })
    assert.equal(cleared.status, 200)
    assert.isNull(cleared.body.plan_ids)
    const audit = await db.from('audit_log').where('action', 'channel.update').where('subject_id', created.body.id).orderBy('id', 'desc').first()
    assert.include(audit.summary, 'planIds')
    assert.equal(audit.source, 'api')
  })

  test('channel:create --plans: by plan names; an unknown name refused, naming it', async ({ assert }) => {
    const run = async (args: string[]) => {
      const instance = await ace.create(ChannelCreate, args)
      ace.ui.switchMode('raw')
      await instance.exec()
      return instance
    }
    const base = ['--provider', 'custom', '--base-url', mock.url, '--models', 'ace-*']
    const unknown = await run(['--name', 'ace-bad', ...base, '--plans', 'vip-m,nosuch'])
    unknown.assertFailed()
    unknown.assertLog('[ red(error) ] --plans: no plan named nosuch', 'stderr')
    assert.isNull(await Channel.findBy('name', 'ace-bad'))
    const made = await run(['--name', 'ace-vip', ...base, '--plans', 'vip-m'])
    made.assertSucceeded()
    assert.deepEqual((await Channel.findByOrFail('name', 'ace-vip')).planIds, [vipPlan])
  })

  test('the panel form saves and clears the plans; the list and the plans page show them', async ({ assert }) => {
    const client = new PanelClient()
    await client.login('ops-groups@test.local', 'admin-password')
    const form = await client.get('/admin/channels/new')
    assert.include(textOf(form.html), 'Plans')
    assert.include(form.html, `name="planIds[]" value="${vipPlan}"`)
    const fields = { name: 'panel-vip', provider: 'custom', baseUrl: mock.url, models: 'p-*', priority: '0', weight: '1' }
    const created = await client.post('/admin/channels', { ...fields, 'planIds[]': [String(vipPlan)] })
    assert.equal(created.status, 302)
    const channel = await Channel.findByOrFail('name', 'panel-vip')
    assert.deepEqual(channel.planIds, [vipPlan])
    const shown = await client.get(`/admin/channels/${channel.id}`)
    assert.match(shown.html, new RegExp(`name="planIds\\[\\]" value="${vipPlan}"\\s+checked`))

    const list = await client.get('/admin/channels')
    assert.match(list.html, new RegExp(`data-testid="channel-plans-${channel.id}">vip-m<`))
    const plans = await client.get('/admin/plans')
    // Every channel here is open to all plans or limited to vip-m: vip-m reaches all, those limited "for it".
    const total = Number((await db.from('channels').count('* as n').first()).n)
    const limited = Number((await db.from('channels').whereNotNull('plan_ids').count('* as n').first()).n)
    assert.isAbove(limited, 0)
    assert.match(plans.html, new RegExp(`data-testid="plan-channels-${vipPlan}"><a href="/admin/channels">${total} of ${total}</a> \\(${limited} for it\\)`))

    // An unknown plan id posted by hand: the form's error, nothing saved.
    await client.get(`/admin/channels/${channel.id}`)
    const bad = await client.post(`/admin/channels/${channel.id}`, { ...fields, 'planIds[]': ['424242'] })
    assert.equal(bad.status, 302)
    assert.include(textOf((await client.follow(bad)).html), 'no plan with id 424242')
    assert.deepEqual((await Channel.findOrFail(channel.id)).planIds, [vipPlan])

    // Saved with no box ticked: every plan again.
    await client.get(`/admin/channels/${channel.id}`)
    const cleared = await client.post(`/admin/channels/${channel.id}`, fields)
    assert.equal(cleared.status, 302)
    assert.isNull((await Channel.findOrFail(channel.id)).planIds)
    const after = await client.get('/admin/channels')
    assert.match(after.html, new RegExp(`data-testid="channel-plans-${channel.id}">All<`))
  })
})
