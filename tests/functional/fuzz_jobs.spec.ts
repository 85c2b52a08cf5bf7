import { test } from '@japa/runner'
import { toFile } from 'openai'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { heldOnKey } from '#gateway/metering/key_reservations'
import { baseUrl, gateway, openai, resetDatabase, seedChannel, seedPrice, seedUser, startMock } from '#tests/helpers'
import { damager, errorShape, parses, pick, prng, STACK_TRACE, type Random, type WireFormat } from '#tests/fuzz_kit'

/**
 * The seeded fuzz of fuzz.spec.ts, on the endpoints it leaves out: images and speech (answered at once), and the
 * ones that start something kept (videos, OpenAI batches, Anthropic Message Batches, Gemini batches, conversations,
 * realtime client secrets). A valid body with random damage, or bytes that are not JSON. Whatever comes back: no
 * 5xx but a legitimate upstream one (502), every error in the endpoint's own format, never a stack trace, no
 * channel's health touched; the endpoints answered at once leave nothing held on the balance or the key.
 *
 * FUZZ_SEED and FUZZ_CASES (per endpoint) reproduce or widen a run.
 */
const SEED = Number(process.env.FUZZ_SEED ?? 20_261_207)
const CASES = Number(process.env.FUZZ_CASES ?? 150)
const CONCURRENCY = 6

const FIELD_NAMES = [
  'model', 'prompt', 'n', 'size', 'quality', 'response_format', 'input', 'voice', 'speed', 'seconds', 'input_reference',
  'items', 'metadata', 'session', 'expires_after', 'requests', 'params', 'custom_id', 'batch', 'input_config', 'endpoint',
  'input_file_id', 'completion_window', 'output_expires_after', 'contents', 'key', 'type', '__proto__', 'constructor',
]
const { damage } = damager(FIELD_NAMES)

interface Endpoint {
  name: string
  format: WireFormat
  path: string
  headers: (key: string) => Record<string, string>
  body: (random: Random) => Record<string, any>
  /** Answered at once: nothing may stay held once every answer is in */
  immediate: boolean
}

const text = (random: Random) => pick(random, ['a cat', 'Count to 3', '😀 hello', 'a'.repeat(300)])
const bearer = (key: string) => ({ authorization: `Bearer ${key}` })

function endpoints(inputFileId: string): Endpoint[] {
  return [
    {
      name: 'images generations',
      format: 'openai',
      path: '/v1/images/generations',
      headers: bearer,
      body: (random) => ({ model: 'fz-image', prompt: text(random), n: pick(random, [1, 2]), size: '1024x1024', response_format: pick(random, ['b64_json', 'url']) }),
      immediate: true,
    },
    {
      name: 'audio speech',
      format: 'openai',
      path: '/v1/audio/speech',
      headers: bearer,
      body: (random) => ({ model: 'fz-tts', input: text(random), voice: pick(random, ['alloy', 'nova']), response_format: 'mp3', speed: 1 }),
      immediate: true,
    },
    {
      name: 'videos',
      format: 'openai',
      path: '/v1/videos',
      headers: bearer,
      body: (random) => ({ model: 'fz-sora', prompt: text(random), seconds: pick(random, ['4', '8']), size: '720x1280' }),
      immediate: false,
    },
    {
      name: 'batches',
      format: 'openai',
      path: '/v1/batches',
      headers: bearer,
      body: (random) => ({ input_file_id: inputFileId, endpoint: '/v1/chat/completions', completion_window: '24h', metadata: { run: text(random) } }),
      immediate: false,
    },
    {
      name: 'conversations',
      format: 'openai',
      path: '/v1/conversations',
      headers: bearer,
      body: (random) => ({ items: [{ type: 'message', role: 'user', content: text(random) }, { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'ok' }] }], metadata: { topic: 'fuzz' } }),
      immediate: true,
    },
    {
      name: 'realtime client secrets',
      format: 'openai',
      path: '/v1/realtime/client_secrets',
      headers: bearer,
      body: (random) => ({ session: { type: 'realtime', model: 'fz-realtime', instructions: text(random) }, expires_after: { anchor: 'created_at', seconds: pick(random, [60, 600]) } }),
      immediate: true,
    },
    {
      name: 'message batches',
      format: 'anthropic',
      path: '/v1/messages/batches',
      headers: (key) => ({ 'x-api-key': key, 'anthropic-version': '2023-06-01' }),
      body: (random) => ({ requests: [{ custom_id: 'a', params: { model: 'fz-claude-b', max_tokens: 16, messages: [{ role: 'user', content: text(random) }] } }, { custom_id: 'b', params: { model: 'fz-claude-b', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] } }] }),
      immediate: false,
    },
    {
      name: 'gemini batches',
      format: 'google',
      path: '/v1beta/models/fz-gem-b:batchGenerateContent',
      headers: (key) => ({ 'x-goog-api-key': key }),
      body: (random) => ({ batch: { display_name: 'fuzz', input_config: { requests: { requests: [{ request: { contents: [{ role: 'user', parts: [{ text: text(random) }] }] }, metadata: { key: 'a' } }] } } } }),
      immediate: false,
    },
  ]
}

/** A batch input file of the user's own, for /v1/batches to name */
async function batchInput(key: string): Promise<string> {
  const line = JSON.stringify({ custom_id: 'r1', method: 'POST', url: '/v1/chat/completions', body: { model: 'fz-batch-chat', messages: [{ role: 'user', content: 'hi' }] } })
  return (await openai(key).files.create({ file: await toFile(Buffer.from(`${line}\n`), 'in.jsonl'), purpose: 'batch' })).id
}

/** Bytes that are not the JSON object the endpoint takes. */
function brokenBytes(random: Random, valid: string): string {
  switch (Math.floor(random() * 5)) {
    case 0:
      return valid.slice(0, Math.floor(random() * valid.length))
    case 1:
      return `{"x":${'['.repeat(300)}${']'.repeat(300)},${valid.slice(1)}`
    case 2:
      return pick(random, ['', '[]', '"text"', '42', 'null'])
    case 3:
      return `${valid.slice(0, -1)},"model":"\\ud800"}`
    default:
      return Buffer.from(Array.from({ length: 64 }, () => Math.floor(random() * 256))).toString('latin1')
  }
}

test.group('Fuzz of the image, speech, video, batch, conversation and client-secret endpoints', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock({ record: 0 })
    await seedChannel({ name: 'fz-openai', provider: 'openai', baseUrl: mock.url, models: ['fz-image', 'fz-tts', 'fz-sora', 'fz-realtime', 'fz-batch-chat'] })
    await seedChannel({ name: 'fz-claude', provider: 'anthropic', baseUrl: mock.url, models: ['fz-claude-b'] })
    await seedChannel({ name: 'fz-gem', provider: 'google', baseUrl: `${mock.origin}/v1beta`, models: ['fz-gem-b'] })
    await seedPrice('fz-*', '0.01', '0.02')
    return () => mock.stop()
  })

  test('{title}')
    .with(['images generations', 'audio speech', 'videos', 'batches', 'conversations', 'realtime client secrets', 'message batches', 'gemini batches'].map((name, index) => ({ name, index, title: `${name}: ${CASES} seeded cases` })))
    .run(async ({ assert }, { name, index }) => {
      const user = await seedUser({ balance: '1000', key: { spendLimit: '500' } })
      const endpoint = endpoints(name === 'batches' ? await batchInput(user.key) : '').find((e) => e.name === name)!
      const random = prng(SEED + index)
      const queue = Array.from({ length: CASES }, () => {
        const valid = endpoint.body(random)
        const roll = random()
        if (roll < 0.15) return JSON.stringify(valid)
        if (roll < 0.85) return JSON.stringify(damage(random, valid))
        return brokenBytes(random, JSON.stringify(valid))
      })
      const statuses = new Map<number, number>()
      const failures: string[] = []

      const runOne = async (body: string) => {
        const response = await fetch(`${baseUrl()}${endpoint.path}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...endpoint.headers(user.key) },
          body,
        })
        const raw = Buffer.from(await response.arrayBuffer()).toString('utf8')
        statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1)
        const where = `${endpoint.name} ${response.status} ${body.slice(0, 300)} -> ${raw.slice(0, 300)}`
        if (STACK_TRACE.test(raw)) failures.push(`stack trace: ${where}`)
        if (response.status >= 500 && response.status !== 502) failures.push(`5xx: ${where}`)
        if (response.status >= 400) {
          let parsed: any = null
          try {
            parsed = JSON.parse(raw)
          } catch {}
          if (!errorShape(endpoint.format, parsed)) failures.push(`error format: ${where}`)
        } else if (response.headers.get('content-type')?.includes('application/json') && !parses(raw)) {
          failures.push(`2xx JSON body that does not parse: ${where}`)
        }
      }

      const workers = Array.from({ length: CONCURRENCY }, async () => {
        for (let body = queue.shift(); body !== undefined; body = queue.shift()) await runOne(body)
      })
      await Promise.all(workers)
      assert.deepEqual(failures.slice(0, 5), [], `${failures.length} failures, statuses ${JSON.stringify([...statuses])}`)
      // The undamaged cases (and some damaged ones) got through: the fuzz reached the code behind the checks.
      const accepted = [...statuses].filter(([status]) => status < 300).reduce((sum, [, count]) => sum + count, 0)
      assert.isAbove(accepted, 0, JSON.stringify([...statuses]))

      const gw = await gateway()
      for (const channel of gw.catalog.channels) assert.equal(gw.health.stateOf(channel.id).failures, 0, `channel ${channel.name}`)
      if (endpoint.immediate) {
        assert.equal((await gw.catalog.user(user.userId))!.reservedPico, 0n)
        assert.equal(heldOnKey(user.keyId), 0n)
      }
      const status = await fetch(`${baseUrl()}/api/status`)
      assert.equal(((await status.json()) as any).status, 'ok')
    })
})
