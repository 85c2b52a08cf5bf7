import { test } from '@japa/runner'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { heldOnKey } from '#gateway/metering/key_reservations'
import { baseUrl, gateway, resetDatabase, seedChannel, seedPrice, seedUser, startMock, usageRows } from '#tests/helpers'
import { damager, errorShape, ODD_STRINGS, parses, pick, prng, STACK_TRACE, type Random, type WireFormat } from '#tests/fuzz_kit'

/**
 * Issue 8: a seeded fuzz of the generation, token-counting, embeddings, rerank and moderations endpoints, so the
 * hostile-input fixes stay fixed. Each case is a valid body of the endpoint
 * with random damage (a field's value swapped for a random JSON value, a
 * field dropped or added, a broken model name, raw bytes that are not the
 * JSON they claim to be), sent to models routed to channels of every
 * dialect, so both pass-through and translation see it. Whatever comes back:
 *
 * - no 5xx but a legitimate upstream one (502 provider_error), and no
 *   channel's health touched (the mock only answers 200 or 4xx);
 * - every error body in the endpoint's own format, never a stack trace;
 * - one usage row per request (each passed key authentication), no hold
 *   left on the balance or the key cap;
 * - the gateway still healthy afterwards.
 *
 * FUZZ_SEED and FUZZ_CASES (per endpoint) reproduce or widen a run.
 */
const SEED = Number(process.env.FUZZ_SEED ?? 20_261_203)
const CASES = Number(process.env.FUZZ_CASES ?? 300)
const CONCURRENCY = 8

const FIELD_NAMES = ['model', 'messages', 'tools', 'stream', 'max_tokens', 'system', 'input', 'contents', 'tool_choice', 'stop', 'temperature', 'extra', 'n', 'generationConfig', 'encoding_format', '__proto__', 'constructor']
const { damage } = damager(FIELD_NAMES)

/** Raw bodies JSON.parse refuses or that the gateway must refuse before parsing. */
function brokenBytes(random: Random, valid: string): string {
  switch (Math.floor(random() * 7)) {
    case 0:
      return valid.slice(0, Math.floor(random() * valid.length))
    case 1:
      return `{"model":"fz-chat-a","model":"fz-claude-a",${valid.slice(1)}`
    case 2:
      return `{"model":"fz-chat-a","x":${'['.repeat(300)}${']'.repeat(300)},${valid.slice(1)}`
    case 3:
      return ''
    case 4:
      return pick(random, ['[]', '"text"', '42', 'null', 'true'])
    case 5:
      return `${valid.slice(0, -1)},"model":"\\ud800"}`
    default:
      return Buffer.from(Array.from({ length: 64 }, () => Math.floor(random() * 256))).toString('latin1')
  }
}

/** A model name as a path segment; a lone surrogate (which encodeURIComponent refuses) as the bytes a careless client sends. */
function pathSegment(model: string): string {
  try {
    return encodeURIComponent(model)
  } catch {
    return model.replace(/[\ud800-\udfff]/g, '%ED%A0%80').replace(/[^A-Za-z0-9%_.~-]/g, (c) => encodeURIComponent(c))
  }
}

interface Endpoint {
  name: string
  format: WireFormat
  path: (random: Random, model: string) => string
  headers: (key: string) => Record<string, string>
  /** A valid body for a model (Gemini: the model is in the path) */
  body: (random: Random, model: string) => Record<string, any>
  models: readonly string[]
}

const GENERATION_MODELS = ['fz-chat-a', 'fz-claude-a', 'fz-gem-a', 'fz-resp-a'] as const
const text = (random: Random) => pick(random, ['hi', 'Count to 3', '😀 hello', 'a'.repeat(300)])

const ENDPOINTS: Endpoint[] = [
  {
    name: 'chat',
    format: 'openai',
    path: () => '/v1/chat/completions',
    headers: (key) => ({ authorization: `Bearer ${key}` }),
    body: (random, model) => ({
      model,
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: [{ type: 'text', text: text(random) }] },
        { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'f', arguments: '{"a":1}' } }] },
        { role: 'tool', tool_call_id: 'call_1', content: 'ok' },
      ],
      tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object', properties: { a: { type: 'number' } } } } }],
      max_tokens: 20,
      stream: random() < 0.4,
    }),
    models: GENERATION_MODELS,
  },
  {
    name: 'messages',
    format: 'anthropic',
    path: () => '/v1/messages',
    headers: (key) => ({ 'x-api-key': key, 'anthropic-version': '2023-06-01' }),
    body: (random, model) => ({
      model,
      max_tokens: 20,
      system: [{ type: 'text', text: 'Be brief.' }],
      messages: [
        { role: 'user', content: text(random) },
        { role: 'assistant', content: [{ type: 'tool_use', id: 'tu_1', name: 'f', input: { a: 1 } }] },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'tu_1', content: 'ok' }] },
      ],
      tools: [{ name: 'f', description: 'a tool', input_schema: { type: 'object', properties: { a: { type: 'number' } } } }],
      stream: random() < 0.4,
    }),
    models: GENERATION_MODELS,
  },
  {
    name: 'messages count_tokens',
    format: 'anthropic',
    path: () => '/v1/messages/count_tokens',
    headers: (key) => ({ 'x-api-key': key, 'anthropic-version': '2023-06-01' }),
    body: (random, model) => ({
      model,
      system: 'Be brief.',
      messages: [{ role: 'user', content: [{ type: 'text', text: text(random) }] }],
      tools: [{ name: 'f', input_schema: { type: 'object', properties: {} } }],
    }),
    models: GENERATION_MODELS,
  },
  {
    name: 'responses',
    format: 'openai',
    path: () => '/v1/responses',
    headers: (key) => ({ authorization: `Bearer ${key}` }),
    body: (random, model) => ({
      model,
      instructions: 'Be brief.',
      input: [
        { role: 'user', content: [{ type: 'input_text', text: text(random) }] },
        { type: 'function_call', call_id: 'c1', name: 'f', arguments: '{}' },
        { type: 'function_call_output', call_id: 'c1', output: 'ok' },
      ],
      tools: [{ type: 'function', name: 'f', parameters: { type: 'object', properties: {} } }],
      max_output_tokens: 20,
      stream: random() < 0.4,
    }),
    models: GENERATION_MODELS,
  },
  {
    name: 'responses compact',
    format: 'openai',
    path: () => '/v1/responses/compact',
    headers: (key) => ({ authorization: `Bearer ${key}` }),
    body: (random, model) => ({
      model,
      instructions: 'Be brief.',
      input: [
        { type: 'message', role: 'user', content: [{ type: 'input_text', text: text(random) }] },
        { type: 'function_call', call_id: 'c1', name: 'f', arguments: '{}' },
        { type: 'function_call_output', call_id: 'c1', output: 'ok' },
        { type: 'compaction', encrypted_content: 'gAAAA-opaque' },
      ],
      tools: [{ type: 'function', name: 'f', parameters: { type: 'object', properties: {} } }],
      parallel_tool_calls: false,
    }),
    models: GENERATION_MODELS,
  },
  {
    name: 'embeddings',
    format: 'openai',
    path: () => '/v1/embeddings',
    headers: (key) => ({ authorization: `Bearer ${key}` }),
    body: (random, model) => ({ model, input: random() < 0.5 ? text(random) : [text(random), 'second'], encoding_format: pick(random, ['float', 'base64']) }),
    models: ['fz-chat-embed', 'fz-gem-embed'],
  },
  {
    name: 'rerank',
    format: 'openai',
    path: (random) => pick(random, ['/v1/rerank', '/v2/rerank', '/rerank']),
    headers: (key) => ({ authorization: `Bearer ${key}` }),
    body: (random, model) => ({
      model,
      query: text(random),
      documents: random() < 0.5 ? [text(random), 'second'] : [{ text: text(random) }],
      top_n: pick(random, [1, 2]),
      return_documents: random() < 0.5,
    }),
    // A custom channel serves rerank; an Anthropic one does not (400 unsupported_endpoint).
    models: ['fz-chat-rerank', 'fz-chat-cohere-rerank', 'fz-claude-a'],
  },
  {
    name: 'moderations',
    format: 'openai',
    path: () => '/v1/moderations',
    headers: (key) => ({ authorization: `Bearer ${key}` }),
    body: (random, model) => ({ model, input: random() < 0.5 ? text(random) : [{ type: 'text', text: text(random) }, 'second'] }),
    models: ['fz-chat-moderation', 'fz-claude-a'],
  },
  {
    name: 'gemini generate',
    format: 'google',
    path: (_random, model) => `/v1beta/models/${pathSegment(model)}:generateContent`,
    headers: (key) => ({ 'x-goog-api-key': key }),
    body: (random) => ({
      systemInstruction: { parts: [{ text: 'Be brief.' }] },
      contents: [
        { role: 'user', parts: [{ text: text(random) }] },
        { role: 'model', parts: [{ functionCall: { name: 'f', args: { a: 1 } } }] },
        { role: 'user', parts: [{ functionResponse: { name: 'f', response: { ok: true } } }] },
      ],
      tools: [{ functionDeclarations: [{ name: 'f', parameters: { type: 'object', properties: { a: { type: 'number' } } } }] }],
      generationConfig: { maxOutputTokens: 20 },
    }),
    models: GENERATION_MODELS,
  },
  {
    name: 'gemini countTokens',
    format: 'google',
    path: (_random, model) => `/v1beta/models/${pathSegment(model)}:countTokens`,
    headers: (key) => ({ 'x-goog-api-key': key }),
    body: (random) => ({ contents: [{ role: 'user', parts: [{ text: text(random) }] }] }),
    models: GENERATION_MODELS,
  },
  {
    name: 'gemini stream',
    format: 'google',
    path: (random, model) => `/v1beta/models/${pathSegment(model)}:streamGenerateContent${random() < 0.7 ? '?alt=sse' : ''}`,
    headers: (key) => ({ 'x-goog-api-key': key }),
    body: (random) => ({ contents: [{ role: 'user', parts: [{ text: text(random) }] }], generationConfig: { maxOutputTokens: 20 } }),
    models: GENERATION_MODELS,
  },
  {
    name: 'completions',
    format: 'openai',
    path: () => '/v1/completions',
    headers: (key) => ({ authorization: `Bearer ${key}` }),
    body: (random, model) => ({
      model,
      prompt: pick(random, [text(random), [text(random), 'second'], [1, 2, 3], [[1, 2], [3]]]),
      suffix: random() < 0.5 ? 'return 1' : undefined,
      max_tokens: 20,
      stream: random() < 0.4,
    }),
    models: GENERATION_MODELS,
  },
]

/** Model names the gateway must refuse (or route) without storing garbage. */
function oddModel(random: Random, models: readonly string[]): string {
  return pick(random, [pick(random, models), 'fz-chat-' + 'x'.repeat(250), 'fz-chat-\u0000', 'fz-chat-\ud800', 'fz-unknown', '', ' ', pick(random, ODD_STRINGS)])
}

interface FuzzCase {
  endpoint: Endpoint
  path: string
  body: string
}

function cases(endpoint: Endpoint, random: Random): FuzzCase[] {
  return Array.from({ length: CASES }, () => {
    const model = random() < 0.15 ? oddModel(random, endpoint.models) : pick(random, endpoint.models)
    const valid = endpoint.body(random, model)
    const isGemini = endpoint.format === 'google'
    if (!isGemini) valid.model = model
    const roll = random()
    let body: string
    if (roll < 0.15) body = JSON.stringify(valid)
    else if (roll < 0.85) body = JSON.stringify(damage(random, valid))
    else body = brokenBytes(random, JSON.stringify(valid))
    // The mock obeys a `mock` field; damage never writes one, and a client's would pass through untouched.
    return { endpoint, path: endpoint.path(random, isGemini ? model : ''), body }
  })
}

test.group('Issue 8: fuzz of the generation and embeddings endpoints', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock({ record: 0 })
    await seedChannel({ name: 'fz-chat', provider: 'custom', baseUrl: mock.url, models: ['fz-chat-*'] })
    await seedChannel({ name: 'fz-claude', provider: 'anthropic', baseUrl: mock.url, models: ['fz-claude-*'] })
    await seedChannel({ name: 'fz-gem', provider: 'google', baseUrl: mock.url, models: ['fz-gem-*'] })
    await seedChannel({ name: 'fz-resp', provider: 'openai', baseUrl: mock.url, models: ['fz-resp-*'] })
    await seedPrice('fz-*', '0.01', '0.02')
    return () => mock.stop()
  })

  test('{title}')
    .with(ENDPOINTS.map((endpoint) => ({ endpoint, title: `${endpoint.name}: ${CASES} seeded cases` })))
    .run(async ({ assert }, { endpoint }) => {
      const user = await seedUser({ balance: '1000', key: { spendLimit: '500' } })
      const random = prng(SEED + ENDPOINTS.indexOf(endpoint))
      const queue = cases(endpoint, random)
      const statuses = new Map<number, number>()
      const failures: string[] = []
      /** Refused before routing (a URL that cannot be decoded): never admitted, so no row */
      let unadmitted = 0

      const runOne = async (c: FuzzCase) => {
        const response = await fetch(`${baseUrl()}${c.path}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...endpoint.headers(user.key) },
          body: c.body,
        })
        const raw = await response.text()
        statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1)
        const where = `${endpoint.name} ${response.status} ${c.path} ${c.body.slice(0, 300)} -> ${raw.slice(0, 300)}`
        if (STACK_TRACE.test(raw)) failures.push(`stack trace: ${where}`)
        if (response.status >= 500 && response.status !== 502) failures.push(`5xx: ${where}`)
        if (response.status >= 400) {
          let parsed: any = null
          try {
            parsed = JSON.parse(raw)
          } catch {}
          if (!errorShape(endpoint.format, parsed)) failures.push(`error format: ${where}`)
          if (parsed?.error?.message === 'Malformed percent-encoding in the URL') unadmitted++
          if (response.status === 502 && parsed?.error?.code !== 'provider_error' && parsed?.error?.status !== 'UNAVAILABLE' && parsed?.error?.type !== 'api_error') {
            failures.push(`502 not from the upstream: ${where}`)
          }
        } else if (response.headers.get('content-type')?.includes('application/json') && !parses(raw)) {
          // Gemini's JSON-array stream is application/json too, and a whole array once it ends.
          failures.push(`2xx JSON body that does not parse: ${where}`)
        }
      }

      const workers = Array.from({ length: CONCURRENCY }, async () => {
        for (let c = queue.shift(); c; c = queue.shift()) await runOne(c)
      })
      await Promise.all(workers)
      assert.deepEqual(failures.slice(0, 5), [], `${failures.length} failures, statuses ${JSON.stringify([...statuses])}`)

      // Bad input never counts against a channel; nothing stays held; every request has its row.
      const gw = await gateway()
      for (const channel of gw.catalog.channels) {
        assert.equal(gw.health.stateOf(channel.id).failures, 0, `channel ${channel.name}`)
      }
      const rows = await usageRows(user.userId)
      assert.lengthOf(rows, CASES - unadmitted)
      assert.isTrue(rows.every((r) => r.status !== 500))
      assert.equal((await gw.catalog.user(user.userId))!.reservedPico, 0n)
      assert.equal(heldOnKey(user.keyId), 0n)
      const status = await fetch(`${baseUrl()}/api/status`)
      assert.equal(status.status, 200)
      assert.equal(((await status.json()) as any).status, 'ok')
    })
})
