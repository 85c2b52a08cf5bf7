import { test } from '@japa/runner'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import {
  balanceAndLedger,
  openai,
  post,
  resetDatabase,
  seedChannel,
  seedPrice,
  seedUser,
  startMock,
  usageRows,
} from '#tests/helpers'

test.group('POST /v1/chat/completions through the official openai SDK', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'mock', provider: 'custom', baseUrl: mock.url, models: ['mock-*', 'gpt-4o*'] })
    await seedPrice('gpt-4o*', '2.5', '10')
    return () => mock.stop()
  })

  test('non-stream answer, usage row, monthly counter and ledger charge', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const answer = await openai(user.key).chat.completions.create({
      model: 'gpt-4o',
      messages: [{ role: 'user', content: 'Hello!' }],
    })
    assert.equal(answer.choices[0].message.content, 'tok0 tok1 tok2 tok3 tok4 ')
    assert.deepEqual(answer.usage, { prompt_tokens: 12, completion_tokens: 5, total_tokens: 17 })
    // The upstream got the gateway's own channel key, not the client's.
    assert.equal(mock.lastRequest()!.headers.authorization, 'Bearer upstream-secret')

    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 1)
    assert.include(rows[0], {
      model: 'gpt-4o',
      served_model: 'gpt-4o',
      provider: 'custom',
      endpoint: 'chat.completions',
      stream: false,
      status: 200,
      prompt_tokens: 12,
      completion_tokens: 5,
      total_tokens: 17,
      estimated: false,
    })
    // 12 x $2.5/M + 5 x $10/M = $0.00008, exactly
    assert.equal(rows[0].cost, '0.000080000000')
    const money = await balanceAndLedger(user.userId)
    assert.equal(money.balance, '0.999920000000')
    assert.equal(money.balance, money.ledger)
  })

  test('stream: chunks relayed, the usage chunk the gateway asked for is removed', async ({ assert }) => {
    const user = await seedUser()
    const stream = await openai(user.key).chat.completions.create({
      model: 'mock-small',
      messages: [{ role: 'user', content: 'Count' }],
      stream: true,
    })
    let text = ''
    let usageChunks = 0
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? ''
      if (chunk.usage) usageChunks++
    }
    assert.equal(text, 'tok0 tok1 tok2 tok3 tok4 ')
    assert.equal(usageChunks, 0)
    // ...but the upstream was asked for usage, and it was metered exactly.
    assert.deepEqual(JSON.parse(mock.lastRequest()!.body).stream_options, { include_usage: true })
    const [row] = await usageRows(user.userId)
    assert.include(row, { stream: true, prompt_tokens: 12, completion_tokens: 5, estimated: false })
    assert.isNotNull(row.ttft_ms)
  })

  test('stream with include_usage: the client gets the usage chunk', async ({ assert }) => {
    const user = await seedUser()
    const stream = await openai(user.key).chat.completions.create({
      model: 'mock-small',
      messages: [{ role: 'user', content: 'Count' }],
      stream: true,
      stream_options: { include_usage: true },
    })
    const usages = []
    for await (const chunk of stream) if (chunk.usage) usages.push(chunk.usage)
    assert.deepEqual(usages, [{ prompt_tokens: 12, completion_tokens: 5, total_tokens: 17 }])
  })

  test('tool calls pass through, non-stream and stream', async ({ assert }) => {
    const user = await seedUser()
    const client = openai(user.key)
    const tools = [
      {
        type: 'function' as const,
        function: { name: 'get_weather', parameters: { type: 'object', properties: { location: { type: 'string' } } } },
      },
    ]
    const answer = await client.chat.completions.create({
      model: 'mock-tools',
      messages: [{ role: 'user', content: 'Weather in Paris?' }],
      tools,
    })
    const call = answer.choices[0].message.tool_calls![0] as any
    assert.equal(answer.choices[0].finish_reason, 'tool_calls')
    assert.equal(call.id, 'call_mock_1')
    assert.equal(call.function.name, 'get_weather')
    assert.deepEqual(JSON.parse(call.function.arguments), { location: 'Paris' })
    assert.deepEqual(JSON.parse(mock.lastRequest()!.body).tools, tools)

    const stream = await client.chat.completions.create({
      model: 'mock-tools',
      messages: [{ role: 'user', content: 'Weather in Paris?' }],
      tools,
      stream: true,
    })
    let args = ''
    let id = ''
    let finish = ''
    for await (const chunk of stream) {
      const delta = chunk.choices[0]?.delta
      for (const tc of delta?.tool_calls ?? []) {
        if (tc.id) id = tc.id
        args += tc.function?.arguments ?? ''
      }
      if (chunk.choices[0]?.finish_reason) finish = chunk.choices[0].finish_reason
    }
    assert.equal(id, 'call_mock_1')
    assert.equal(finish, 'tool_calls')
    assert.deepEqual(JSON.parse(args), { location: 'Paris' })

    // The tool result round-trips: the follow-up turn reaches the upstream with ids intact.
    const followUp = await client.chat.completions.create({
      model: 'mock-tools',
      messages: [
        { role: 'user', content: 'Weather in Paris?' },
        { role: 'assistant', content: null, tool_calls: [{ id, type: 'function', function: { name: 'get_weather', arguments: args } }] },
        { role: 'tool', tool_call_id: id, content: '18C' },
      ],
      tools,
    })
    assert.equal(followUp.choices[0].finish_reason, 'stop')
    assert.equal(JSON.parse(mock.lastRequest()!.body).messages[2].tool_call_id, 'call_mock_1')
  })

  test('fields the gateway does not own reach the upstream byte for byte', async ({ assert }) => {
    const user = await seedUser()
    const raw =
      '{"model":"mock-raw","messages":[{"role":"user","content":"  spaced  ","parsed":null}],"temperature":0.70,"custom_field":{"nested":["",null]},"top_p":1.0}'
    const response = await post('/v1/chat/completions', raw, { authorization: `Bearer ${user.key}` })
    assert.equal(response.status, 200)
    assert.equal(mock.lastRequest()!.body, raw)
  })

  test('model mapping: upstream gets its own name, the client sees the public one', async ({ assert }) => {
    const mapped = await startMock()
    await seedChannel({
      name: 'mapped',
      baseUrl: mapped.url,
      models: [],
      modelMapping: { 'public-model': 'vendor/internal-v2' },
    })
    const user = await seedUser()
    const client = openai(user.key)
    const answer = await client.chat.completions.create({
      model: 'public-model',
      messages: [{ role: 'user', content: 'hi' }],
    })
    assert.equal(JSON.parse(mapped.lastRequest()!.body).model, 'vendor/internal-v2')
    assert.equal(answer.model, 'public-model')
    const stream = await client.chat.completions.create({
      model: 'public-model',
      messages: [{ role: 'user', content: 'hi' }],
      stream: true,
    })
    for await (const chunk of stream) assert.equal(chunk.model, 'public-model')
    const rows = await usageRows(user.userId)
    assert.equal(rows[0].served_model, 'vendor/internal-v2')
    await mapped.stop()
  })

  test('OpenRouter attribution headers are forwarded to an openrouter channel', async ({ assert }) => {
    const router = await startMock()
    await seedChannel({ name: 'openrouter', provider: 'openrouter', baseUrl: router.url, models: ['nex-agi/*'] })
    const user = await seedUser()
    const response = await post(
      '/v1/chat/completions',
      { model: 'nex-agi/nex-n2-pro:free', messages: [{ role: 'user', content: 'hi' }] },
      {
        'authorization': `Bearer ${user.key}`,
        'HTTP-Referer': 'https://my-app.example',
        'X-Title': 'My App',
        'X-OpenRouter-Title': 'My App 2',
      }
    )
    assert.equal(response.status, 200)
    const headers = router.lastRequest()!.headers
    assert.equal(headers['http-referer'], 'https://my-app.example')
    assert.equal(headers['x-title'], 'My App')
    assert.equal(headers['x-openrouter-title'], 'My App 2')
    await router.stop()
  })
})
