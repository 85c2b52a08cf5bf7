import { test } from '@japa/runner'
import { setPrice } from '#actions/set_price'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { baseUrl, post, refreshCaches, resetDatabase, seedChannel, seedUser, startMock, usageRows } from '#tests/helpers'

/**
 * LiteLLM's `GET /model/info`, as Cline's LiteLLM provider reads it (its
 * `fetchLiteLlmModelsInfo`: `{base}/v1/model/info` with `x-litellm-api-key`,
 * then `model_info.input_cost_per_token`, `output_cost_per_token`,
 * `cache_read_input_token_cost`, `cache_creation_input_token_cost` for its cost
 * display and `supports_prompt_caching`), and Roo Code's and Kilo Code's
 * LiteLLM model pickers (`model_name`, `litellm_params.model`,
 * `max_input_tokens`, the prices).
 */
test.group('LiteLLM model info', (group) => {
  let mock: MockUpstream
  let user: Awaited<ReturnType<typeof seedUser>>

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'openai', provider: 'openai', baseUrl: mock.url, models: ['gpt-4o', 'text-embedding-3-small', 'tts-1', 'whisper-1'] })
    await seedChannel({ name: 'claude', provider: 'anthropic', baseUrl: mock.url, models: ['claude-sonnet-4'] })
    await seedChannel({ name: 'vllm', provider: 'custom', baseUrl: mock.url, models: ['qwen-*'] })
    await setPrice({ model: 'gpt-4o', input: '2.5', output: '10', cacheRead: '1.25' })
    await setPrice({ model: 'qwen-coder', input: '0.5', output: '1' })
    await setPrice({ model: 'tts-1', input: '0', output: '0', perCharacter: '0.000015' })
    await refreshCaches()
    // Plan prices at 0.8 of list; the key may not use whisper.
    user = await seedUser({
      plan: { name: 'pro', priceMultiplier: '0.8' },
      balance: '10',
      keyModels: ['gpt-*', 'claude-*', 'qwen-*', 'text-embedding-*', 'tts-*'],
    })
    return () => mock.stop()
  })

  async function get(path: string, headers: Record<string, string> = { authorization: `Bearer ${user.key}` }) {
    const answer = await fetch(`${baseUrl()}${path}`, { headers })
    return { status: answer.status, body: (await answer.json()) as any }
  }

  function entry(body: any, name: string) {
    return body.data.find((e: any) => e.model_name === name)
  }

  test('the models /v1/models lists, at the prices the plan pays, in the fields LiteLLM clients read', async ({ assert }) => {
    const { status, body } = await get('/v1/model/info')
    assert.equal(status, 200)
    const listed = (await get('/v1/models')).body.data.map((m: any) => m.id).sort()
    assert.deepEqual(body.data.map((e: any) => e.model_name), listed)
    assert.notInclude(listed, 'whisper-1')
    // Roo Code skips an entry without model_name, model_info or litellm_params.model.
    for (const e of body.data) {
      assert.isString(e.litellm_params.model)
      assert.equal(e.model_info.id, e.model_name)
    }

    const gpt = entry(body, 'gpt-4o').model_info
    assert.include(gpt, { mode: 'chat', litellm_provider: 'openai', max_input_tokens: 128_000, max_output_tokens: null, supports_prompt_caching: true })
    // $2.5 / $10 / $1.25 per 1M tokens at 0.8: USD per token.
    assert.closeTo(gpt.input_cost_per_token, 2e-6, 1e-18)
    assert.closeTo(gpt.output_cost_per_token, 8e-6, 1e-18)
    assert.closeTo(gpt.cache_read_input_token_cost, 1e-6, 1e-18)
    assert.notProperty(gpt, 'cache_creation_input_token_cost')

    const claude = entry(body, 'claude-sonnet-4').model_info
    assert.include(claude, { litellm_provider: 'anthropic', max_input_tokens: 200_000, input_cost_per_token: 0, output_cost_per_token: 0 })
    // An anthropic channel caches on the cache_control marks Cline then adds.
    assert.isTrue(claude.supports_prompt_caching)

    // A priced name served through a custom channel's glob; no cache price: a cached token costs the input price.
    const qwen = entry(body, 'qwen-coder').model_info
    assert.include(qwen, { litellm_provider: 'openai', max_input_tokens: null, supports_prompt_caching: false })
    assert.closeTo(qwen.input_cost_per_token, 4e-7, 1e-18)
    assert.equal(qwen.cache_read_input_token_cost, qwen.input_cost_per_token)

    const embedding = entry(body, 'text-embedding-3-small').model_info
    assert.equal(embedding.mode, 'embedding')
    assert.notProperty(embedding, 'supports_prompt_caching')
    const speech = entry(body, 'tts-1').model_info
    assert.equal(speech.mode, 'audio_speech')
    assert.closeTo(speech.input_cost_per_character, 0.000012, 1e-18)
    // Nothing the gateway does not know is claimed.
    for (const e of body.data) {
      for (const field of ['supports_vision', 'supports_function_calling', 'supports_reasoning']) assert.notProperty(e.model_info, field)
    }
  })

  test("Cline's cost from these prices is what the gateway bills", async ({ assert }) => {
    // Cline: (prompt - cache reads) x input + cache reads x cache read price + completion x output.
    const answer = await post('/v1/chat/completions', { model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }], mock: { cache_read: 40 } }, { authorization: `Bearer ${user.key}` })
    assert.equal(answer.status, 200)
    const usage = ((await answer.json()) as any).usage
    const cached = usage.prompt_tokens_details.cached_tokens
    assert.equal(cached, 40)
    const info = entry((await get('/v1/model/info')).body, 'gpt-4o').model_info
    const cline =
      (usage.prompt_tokens - cached) * info.input_cost_per_token + cached * info.cache_read_input_token_cost + usage.completion_tokens * info.output_cost_per_token
    const row = (await usageRows(user.userId)).at(-1)!
    assert.closeTo(cline, Number(row.cost), 1e-12)
    assert.isAbove(Number(row.cost), 0)
  })

  test("where Cline, Roo and LiteLLM's docs call it: /v1/model/info and /model/info, with LiteLLM's header or a Bearer key", async ({ assert }) => {
    const v1 = await get('/v1/model/info', { 'x-litellm-api-key': user.key, accept: 'application/json' })
    const bare = await get('/model/info', { authorization: `Bearer ${user.key}` })
    assert.equal(v1.status, 200)
    assert.deepEqual(bare, v1)
    const anonymous = await get('/v1/model/info', {})
    assert.equal(anonymous.status, 401)
    assert.equal(anonymous.body.error.code, 'invalid_api_key')
  })

  test("LiteLLM's litellm_model_id selects one model; an unknown one is 404, a model the key may not use 403", async ({ assert }) => {
    const one = await get('/v1/model/info?litellm_model_id=gpt-4o')
    assert.equal(one.status, 200)
    assert.deepEqual(one.body.data.map((e: any) => e.model_name), ['gpt-4o'])
    const unknown = await get('/model/info?litellm_model_id=qwen-unlisted')
    assert.equal(unknown.status, 404)
    assert.equal(unknown.body.error.code, 'model_not_found')
    assert.include(unknown.body.error.message, "'qwen-unlisted'")
    const denied = await get('/v1/model/info?litellm_model_id=whisper-1')
    assert.equal(denied.status, 403)
    assert.equal(denied.body.error.code, 'model_not_allowed')
  })

  test("LiteLLM's model groups: one group a model, ?model_group= selects one", async ({ assert }) => {
    const { status, body } = await get('/v1/model_group/info')
    assert.equal(status, 200)
    const gpt = body.data.find((g: any) => g.model_group === 'gpt-4o')
    assert.include(gpt, { mode: 'chat', max_input_tokens: 128_000, supports_prompt_caching: true })
    assert.deepEqual(gpt.providers, ['openai'])
    assert.closeTo(gpt.input_cost_per_token, 2e-6, 1e-18)
    const one = await get('/model_group/info?model_group=claude-sonnet-4')
    assert.deepEqual(one.body.data.map((g: any) => g.model_group), ['claude-sonnet-4'])
    assert.equal((await get('/v1/model_group/info?model_group=qwen-unlisted')).status, 404)
  })
})
