import { test } from '@japa/runner'
import { readFileSync } from 'node:fs'
import { ResponseCollector, type CanonicalEvent, type CanonicalResponse, type CanonicalUsage, type DialectName } from '#gateway/dialects/canonical'
import { parseJson } from '#gateway/dialects/dialect'
import { dialectOf } from '#gateway/dialects/registry'
import { SseParser, type SseEvent } from '#gateway/sse/sse_parser'

/**
 * Stream transcripts in each provider's documented wire format (shaped on
 * real captures: ids, usage detail objects, pings, empty first deltas) fed
 * through the dialect's decoder, byte-sliced; each must yield its content and
 * exactly this usage. The pass-through relay's usage reading must agree, and
 * re-encoding the decoded stream in the same dialect must decode to the same.
 */
interface Transcript {
  file: string
  dialect: DialectName
  usage: CanonicalUsage
  response: Omit<CanonicalResponse, 'usage'>
}

/** Stands for an id the decoder made for a call that came without one (newToolCallId). */
const MINTED = 'call_<minted>'
const minted = (response: CanonicalResponse): CanonicalResponse => ({
  ...response,
  content: response.content.map((p) => (p.type === 'tool_call' && /^call_[\w-]{24}$/.test(p.id) ? { ...p, id: MINTED } : p)),
})

const TRANSCRIPTS: Transcript[] = [
  {
    file: 'openai_chat_tools_reasoning.sse',
    dialect: 'openai_chat',
    usage: { inputTokens: 412, outputTokens: 96, cacheReadTokens: 384, cacheWriteTokens: 0, reasoningTokens: 61 },
    response: {
      id: 'chatcmpl-8f2a',
      model: 'deepseek-reasoner',
      stopReason: 'tool_use',
      stopSequence: undefined,
      content: [
        { type: 'reasoning', text: 'The user wants two cities.', id: undefined },
        { type: 'text', text: 'Checking both.' },
        { type: 'tool_call', id: 'call_0_a1', name: 'get_weather', arguments: '{"location":"Paris"}', custom: undefined },
        { type: 'tool_call', id: 'call_1_b2', name: 'get_weather', arguments: '{"location":"Rome"}', custom: undefined },
      ],
    },
  },
  {
    // Parallel calls as some OpenAI-compatible servers stream them: started together, arguments interleaved by index.
    file: 'openai_chat_parallel_interleaved.sse',
    dialect: 'openai_chat',
    usage: { inputTokens: 220, outputTokens: 41, cacheReadTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0 },
    response: {
      id: 'chatcmpl-9c1b',
      model: 'qwen3-coder',
      stopReason: 'tool_use',
      stopSequence: undefined,
      content: [
        { type: 'text', text: 'Checking both.' },
        { type: 'tool_call', id: 'call_a7', name: 'get_weather', arguments: '{"location":"Paris"}', custom: undefined },
        { type: 'tool_call', id: 'call_b8', name: 'get_weather', arguments: '{"location":"Rome"}', custom: undefined },
      ],
    },
  },
  {
    file: 'anthropic_thinking_tool.sse',
    dialect: 'anthropic_messages',
    // input_tokens 472 excludes cache: canonical input = 472 + 1024 + 20480
    usage: { inputTokens: 21_976, outputTokens: 89, cacheReadTokens: 20_480, cacheWriteTokens: 1024, reasoningTokens: 0 },
    response: {
      id: 'msg_01XFDUDYJgAACzvnptvVoYEL',
      model: 'claude-sonnet-4-5-20250929',
      stopReason: 'tool_use',
      stopSequence: undefined,
      content: [
        { type: 'reasoning', text: 'I should look up the weather.', id: undefined, signature: 'EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds' },
        { type: 'text', text: 'Let me check.' },
        { type: 'tool_call', id: 'toolu_01T1x1fJ34qAmk2tNTrN7Up6', name: 'get_weather', arguments: '{"location": "San Francisco, CA"}', custom: undefined },
      ],
    },
  },
  {
    file: 'openai_responses_reasoning_tool.sse',
    dialect: 'openai_responses',
    usage: { inputTokens: 5210, outputTokens: 155, cacheReadTokens: 4864, cacheWriteTokens: 0, reasoningTokens: 128 },
    response: {
      id: 'resp_68a1',
      model: 'gpt-5-codex',
      stopReason: 'tool_use',
      stopSequence: undefined,
      content: [
        { type: 'reasoning', text: '**Listing files**', id: 'rs_68a1', signature: 'gAAAAABo_enc' },
        { type: 'tool_call', id: 'call_Qx1', name: 'shell', arguments: '{"command":["ls","-la"]}', custom: undefined },
      ],
    },
  },
  {
    file: 'gemini_thought_function.sse',
    dialect: 'gemini',
    // thoughts are output (and reasoning) tokens; cached content is part of the prompt
    usage: { inputTokens: 96, outputTokens: 73, cacheReadTokens: 64, cacheWriteTokens: 0, reasoningTokens: 54 },
    response: {
      id: 'kP0gaO2_AbcD',
      model: 'gemini-2.5-pro',
      stopReason: 'tool_use',
      stopSequence: undefined,
      content: [
        { type: 'reasoning', text: '**Planning the call**\n\nI need the weather tool.', id: undefined },
        { type: 'text', text: 'Checking Paris.' },
        // Gemini gives no call id: the decoder makes one, random (see minted())
        { type: 'tool_call', id: MINTED, name: 'get_weather', arguments: '{"location":"Paris"}', custom: undefined, signature: 'CiQB0e2Kb6sig' },
      ],
    },
  },
]

function events(bytes: Buffer, slice: number): SseEvent[] {
  const parser = new SseParser()
  const out: SseEvent[] = []
  for (let i = 0; i < bytes.length; i += slice) out.push(...parser.push(bytes.subarray(i, i + slice)))
  return [...out, ...parser.end()]
}

function collect(dialect: DialectName, sse: SseEvent[]): { response: CanonicalResponse; events: CanonicalEvent[] } {
  const decoder = dialectOf(dialect).streamDecoder()
  const all = [...sse.flatMap((e) => decoder.push(e)), ...decoder.end()]
  const collector = new ResponseCollector()
  for (const event of all) collector.push(event)
  return { response: collector.response(), events: all }
}

test.group('Stream transcripts through each dialect decoder', () => {
  for (const transcript of TRANSCRIPTS) {
    test(`${transcript.file}: content, stop reason and usage`, ({ assert }) => {
      const bytes = readFileSync(new URL(`../fixtures/transcripts/${transcript.file}`, import.meta.url))
      for (const slice of [1, 7, 64, bytes.length]) {
        const { response } = collect(transcript.dialect, events(bytes, slice))
        assert.deepEqual(minted(response), { ...transcript.response, usage: transcript.usage } as CanonicalResponse, `slice ${slice}`)
      }
    })

    test(`${transcript.file}: one block open at a time, every piece inside its block`, ({ assert }) => {
      // What every encoder relies on: Anthropic's wire refuses a delta after its block's stop, Gemini's
      // and Responses' encoders write a call whole at its stop.
      const bytes = readFileSync(new URL(`../fixtures/transcripts/${transcript.file}`, import.meta.url))
      for (const slice of [1, 64]) {
        let open: number | null = null
        for (const event of collect(transcript.dialect, events(bytes, slice)).events) {
          if (event.type === 'block_start') {
            assert.isNull(open, `block ${event.index} starts while ${open} is open (slice ${slice})`)
            open = event.index
          } else if (event.type === 'delta' || event.type === 'signature' || event.type === 'redacted' || event.type === 'block_stop') {
            assert.equal(event.index, open, `${event.type} for block ${event.index} while ${open} is open (slice ${slice})`)
            if (event.type === 'block_stop') open = null
          }
        }
        assert.isNull(open, 'a block is left open')
      }
    })

    test(`${transcript.file}: the pass-through relay reads the same usage`, ({ assert }) => {
      const bytes = readFileSync(new URL(`../fixtures/transcripts/${transcript.file}`, import.meta.url))
      const rules = dialectOf(transcript.dialect).passThrough
      let usage: CanonicalUsage | null = null
      let final = false
      for (const event of events(bytes, 64)) {
        if (event.data === rules.sentinel || !rules.carriesUsage(event)) continue
        const parsed = parseJson(event.data)
        const found = rules.readUsage(parsed, usage)
        if (found && found !== usage) {
          usage = found
          final = rules.isFinal?.(parsed) ?? true
        }
      }
      assert.deepEqual(usage, transcript.usage)
      assert.isTrue(final)
    })

    test(`${transcript.file}: re-encoded in its own dialect, it decodes to the same`, ({ assert }) => {
      const bytes = readFileSync(new URL(`../fixtures/transcripts/${transcript.file}`, import.meta.url))
      // One decode for both sides: an id the decoder makes is new each time
      const { events: canonical, response: expected } = collect(transcript.dialect, events(bytes, 64))
      const encoder = dialectOf(transcript.dialect).streamEncoder({ model: transcript.response.model, includeUsage: true })
      const encoded = canonical.map((e) => encoder.push(e)).join('') + encoder.end()
      const { response } = collect(transcript.dialect, events(Buffer.from(encoded), 64))
      assert.deepEqual(response.content.map(stripIds), expected.content.map(stripIds))
      assert.deepEqual(response.usage, expected.usage)
      assert.equal(response.stopReason, expected.stopReason)
    })
  }
})

/** Encoders mint their own item ids (Responses rs_/fc_, chatcmpl-): compare what a client relies on. */
function stripIds(part: CanonicalResponse['content'][number]) {
  return part.type === 'reasoning' ? { ...part, id: undefined } : part
}

test.group('Stream transcripts translated into every other dialect', () => {
  const DIALECTS: DialectName[] = ['openai_chat', 'anthropic_messages', 'openai_responses', 'gemini']
  for (const transcript of TRANSCRIPTS) {
    for (const target of DIALECTS.filter((d) => d !== transcript.dialect)) {
      test(`${transcript.file} -> ${target}: text, reasoning, tool calls (ids kept) and usage survive`, ({ assert }) => {
        const bytes = readFileSync(new URL(`../fixtures/transcripts/${transcript.file}`, import.meta.url))
        const source = collect(transcript.dialect, events(bytes, 64))
        const encoder = dialectOf(target).streamEncoder({ model: 'client-model', includeUsage: true })
        const encoded = source.events.map((e) => encoder.push(e)).join('') + encoder.end()
        const { response } = collect(target, events(Buffer.from(encoded), 64))
        const shape = (r: CanonicalResponse) =>
          r.content.map((p) => (p.type === 'tool_call' ? { id: p.id, name: p.name, args: JSON.parse(p.arguments) } : p.type === 'image' ? { type: p.type } : { type: p.type, text: p.text }))
        assert.deepEqual(shape(response), shape(source.response))
        assert.equal(response.stopReason, 'tool_use')
        const usage = (u: CanonicalUsage | null) => u && { input: u.inputTokens, output: u.outputTokens, cacheRead: u.cacheReadTokens }
        assert.deepEqual(usage(response.usage), usage(transcript.usage))
      })
    }
  }
})
