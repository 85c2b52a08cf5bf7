import { test } from '@japa/runner'
import { GatewayError } from '#exceptions/gateway_error'
import { readBatchInput, withModel } from '#gateway/batches/batch_input'
import { checkJsonStructure } from '#gateway/http/json_guard'
import { MAX_MESSAGE_BATCH_REQUESTS, readMessageBatch, withUpstreamModel } from '#gateway/batches/message_batch_input'
import { noUsage, sumOutputUsage, sumResultsUsage, tokenUsageOf } from '#gateway/batches/batch_output'
import { batchCost, batchHold } from '#gateway/batches/batch_pricing'
import { BatchSweeper } from '#gateway/batches/batch_sweeper'
import { BilledOnce, CustomIdDigests } from '#gateway/batches/custom_ids'
import { DEFAULT_COMPLETION_ALLOWANCE } from '#gateway/metering/reservation'
import type { PriceInfo } from '#gateway/types'

/**
 * The Batch API's pure parts: the input file's reading (one model, one
 * endpoint, the completion tokens its lines may use), the output file's
 * usage summed as it streams (lines cut anywhere between chunks), the batch
 * price, and the sweep's timer.
 */

function line(custom: string, body: Record<string, unknown>, url = '/v1/chat/completions') {
  return JSON.stringify({ custom_id: custom, method: 'POST', url, body })
}

function refusal(run: () => unknown): GatewayError {
  try {
    run()
  } catch (error) {
    if (error instanceof GatewayError) return error
    throw error
  }
  throw new Error('not refused')
}

async function asyncRefusal(run: () => Promise<unknown>): Promise<GatewayError> {
  try {
    await run()
  } catch (error) {
    if (error instanceof GatewayError) return error
    throw error
  }
  throw new Error('not refused')
}

test.group('batch input files', () => {
  test('one model and endpoint; completion tokens by max_tokens or the default allowance; blank lines and CRLF skipped', async ({ assert }) => {
    const file = Buffer.from(
      [line('a', { model: 'm', max_tokens: 10 }), '', line('b', { model: 'm', max_completion_tokens: 7, n: 2 }), line('c', { model: 'm' })].join('\r\n') + '\r\n'
    )
    assert.deepInclude(await readBatchInput(file), { model: 'm', endpoint: '/v1/chat/completions', lines: 3, completionHold: 10 + 14 + DEFAULT_COMPLETION_ALLOWANCE })
    const embeddings = Buffer.from(line('a', { model: 'e', input: 'x' }, '/v1/embeddings'))
    assert.deepInclude(await readBatchInput(embeddings), { model: 'e', endpoint: '/v1/embeddings', lines: 1, completionHold: 0 })
  })

  test('refusals say which line and why', async ({ assert }) => {
    const cases: Array<[string, string, string]> = [
      [`${line('a', { model: 'm' })}\n${line('b', { model: 'n' })}`, 'mixed_models', "Line 2 names the model 'n'"],
      [`${line('a', { model: 'm' })}\n${line('b', { model: 'm' }, '/v1/embeddings')}`, 'mixed_endpoints', 'Line 2 calls /v1/embeddings'],
      [`${line('a', { model: 'm' })}\n${line('a', { model: 'm' })}`, 'invalid_batch_file', "Line 2 repeats the custom_id 'a'"],
      [line('a', { model: 'm' }, '/v1/images/generations'), 'invalid_batch_file', 'Line 1: url must be one of'],
      [line('a', { messages: [] }), 'invalid_batch_file', 'Line 1: body.model is required'],
      ['\n\n', 'invalid_batch_file', 'The file holds no request line'],
      ['[1]', 'invalid_batch_file', 'Line 1 is not a JSON object'],
      // As a request body's structure: JSON.stringify recursed through such a line when writing it again (Azure, a mapped name)
      [`${line('a', { model: 'm' })}\n${line('b', { model: 'm', x: JSON.parse(`${'['.repeat(130)}${']'.repeat(130)}`) })}`, 'json_too_deep', 'Line 2: it is nested too deeply'],
      [`{"custom_id":"a","custom_id":"b","method":"POST","url":"/v1/chat/completions","body":{"model":"m"}}`, 'duplicate_key', "Line 1: Duplicate key 'custom_id' in the line"],
      // In the line's request too: held and billed as 'dear' (JSON.parse keeps the last), the upstream may read 'cheap'
      [
        `${line('a', { model: 'cheap' })}\n{"custom_id":"b","method":"POST","url":"/v1/chat/completions","body":{"model":"cheap","max_tokens":1,"model":"dear"}}`,
        'duplicate_key',
        "Line 2: Duplicate key 'model' in 'body' of the line",
      ],
      [`{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"model":"m","max_tokens":1,"max_tokens":99999}}`, 'duplicate_key', "Line 1: Duplicate key 'max_tokens' in 'body'"],
    ]
    for (const [text, code, message] of cases) {
      const error = await asyncRefusal(() => readBatchInput(Buffer.from(text)))
      assert.equal(error.status, 400)
      assert.equal(error.code, code)
      assert.include(error.message, message)
    }
  })

  test("a key repeated in different objects of a line is no duplicate: only the line's own keys and its body's are checked", async ({ assert }) => {
    const text = [
      // The same keys in the body's messages, in another top-level object before the body, and in the body's nested objects
      `{"custom_id":"a","metadata":{"model":"x","model":"y"},"method":"POST","url":"/v1/chat/completions","body":{"model":"m","messages":[{"role":"user","content":"a"},{"role":"user","content":"b"}],"response_format":{"type":"json_schema","json_schema":{"name":"n","schema":{"type":"object","type":"object"}}}}}`,
      // After the body closes, an object at its depth is not the body
      `{"custom_id":"b","method":"POST","url":"/v1/chat/completions","body":{"model":"m","max_tokens":2},"extra":{"model":"z","max_tokens":3}}`,
      // A key whose value is an array of objects named like the member: not the member's object
      `{"custom_id":"c","method":"POST","url":"/v1/chat/completions","body":{"model":"m"},"more":[{"body":1,"body":2}]}`,
    ].join('\n')
    assert.deepInclude(await readBatchInput(Buffer.from(text)), { model: 'm', lines: 3, completionHold: 2 + 2 * DEFAULT_COMPLETION_ALLOWANCE })
  })

  test("a Message Batch's requests: each one's params checked for a key twice, nothing else below the top level", ({ assert }) => {
    const path = ['requests', '*', 'params']
    const check = (text: string) => checkJsonStructure(Buffer.from(text), path)
    const refused = refusal(() => check('{"requests":[{"params":{"model":"a"}},5,[],{"custom_id":"x","params":{"model":"a","max_tokens":1,"model":"b"}}]}'))
    assert.equal(refused.code, 'duplicate_key')
    assert.equal(refused.message, "Duplicate key 'model' in 'requests[3].params' of the request body")
    assert.equal(refusal(() => check('{"requests":[{"params":{"mod\\u0065l":"a","model":"b"}}]}')).code, 'duplicate_key')
    // Not a request's params: another member's object, params nested deeper, an array where the requests are not, keys after params closed
    for (const text of [
      '{"other":[{"params":{"model":"a","model":"b"}}],"requests":[{"params":{"model":"a"}}]}',
      '{"requests":[{"params":{"model":"a","messages":[{"model":1,"model":2}]},"metadata":{"model":1,"model":2}}]}',
      '{"requests":[[{"params":{"model":"a","model":"b"}}]]}',
      '{"requests":{"params":{"model":"a","model":"b"}}}',
      '{"requests":[{"params":[{"model":"a","model":"b"}]}]}',
      '{"requests":[{"x":{"params":{"model":"a","model":"b"}}}]}',
    ]) {
      assert.doesNotThrow(() => check(text), text)
    }
  })

  test('bytes that are not JSON (commas and closers outside any container) are left to JSON.parse, with and without a path', ({ assert }) => {
    for (const text of ['1,2', ',', ']],{', '}{,"a":1', '"x",,', '\u00fe,6\u00a1LH', '[1]],']) {
      for (const path of [undefined, ['body'], ['requests', '*', 'params']]) {
        let thrown: unknown = null
        try {
          checkJsonStructure(Buffer.from(text), path)
        } catch (error) {
          thrown = error
        }
        assert.isNull(thrown, `${JSON.stringify(text)} ${path}`)
      }
    }
  })

  test('a 100 MB file is read and rewritten a slice at a time: the event loop never waits long for it', async ({ assert }) => {
    const pad = '\u6c49'.repeat(1300)
    const lines: string[] = []
    for (let i = 0; i < 25_000; i++) lines.push(line(`r${i}`, { model: 'm', messages: [{ role: 'user', content: pad }], max_tokens: 5 }))
    const file = Buffer.from(`${lines.join('\n')}\n`)
    lines.length = 0
    // The longest gap between ticks of a 5 ms timer while the file is read, then written for another name and url
    const longestGap = async (work: () => Promise<unknown>) => {
      let last = performance.now()
      let longest = 0
      const timer = setInterval(() => {
        const now = performance.now()
        longest = Math.max(longest, now - last)
        last = now
      }, 5)
      const started = performance.now()
      await work()
      clearInterval(timer)
      return { longest, total: performance.now() - started }
    }
    const read = await longestGap(() => readBatchInput(file))
    const written = await longestGap(() => withModel(file, 'deployment', '/chat/completions'))
    // Before: one block each, the whole read and the whole rewrite (3.5 s and 4.6 s on a loaded 2-core machine; now 106 and 57 ms)
    assert.isBelow(read.longest, 400, `read: ${Math.round(read.longest)} ms without a tick in ${Math.round(read.total)} ms`)
    assert.isBelow(written.longest, 400, `rewrite: ${Math.round(written.longest)} ms without a tick in ${Math.round(written.total)} ms`)
  })

  test("withModel renames each line's body.model and nothing else", async ({ assert }) => {
    const file = Buffer.from(`${line('a', { model: 'm', messages: [{ role: 'user', content: 'hi' }], max_tokens: 3 })}\n`)
    const renamed = Buffer.concat(await withModel(file, 'upstream-m')).toString('utf8').trim().split('\n').map((l) => JSON.parse(l))
    assert.deepEqual(renamed, [{ custom_id: 'a', method: 'POST', url: '/v1/chat/completions', body: { model: 'upstream-m', messages: [{ role: 'user', content: 'hi' }], max_tokens: 3 } }])
  })
})

test.group('message batch bodies', () => {
  const request = (custom_id: unknown, params: Record<string, unknown> = { model: 'claude-x', max_tokens: 10 }) => ({ custom_id, params })

  test('one model; output tokens by each max_tokens or the default allowance', ({ assert }) => {
    const body = { requests: [request('a'), request('b-2_C', { model: 'claude-x', max_tokens: 7 }), request('c', { model: 'claude-x' })] }
    assert.deepInclude(readMessageBatch(body), { model: 'claude-x', requests: 3, completionHold: 10 + 7 + DEFAULT_COMPLETION_ALLOWANCE })
    const renamed = JSON.parse(withUpstreamModel({ ...body, extra: 1 }, 'claude-x-2025'))
    assert.deepEqual(renamed.requests.map((r: any) => r.params.model), ['claude-x-2025', 'claude-x-2025', 'claude-x-2025'])
    assert.equal(renamed.extra, 1, 'every other field as sent')
    assert.equal(renamed.requests[1].params.max_tokens, 7)
  })

  test("refusals say which request and why; custom ids as Anthropic's (1 to 64 of [a-zA-Z0-9_-], unique)", ({ assert }) => {
    const cases: Array<[unknown, string, string]> = [
      [{ requests: [request('a'), request('b', { model: 'claude-y' })] }, 'mixed_models', "requests.1.params.model is 'claude-y', requests.0's 'claude-x'"],
      [{ requests: [request('a'), request('a')] }, 'invalid_message_batch', "requests.1.custom_id: 'a' is used by another request"],
      [{ requests: [request('a b')] }, 'invalid_message_batch', 'requests.0.custom_id: 1 to 64'],
      [{ requests: [request('x'.repeat(65))] }, 'invalid_message_batch', 'requests.0.custom_id: 1 to 64'],
      [{ requests: [request('')] }, 'invalid_message_batch', 'requests.0.custom_id'],
      [{ requests: [request(7)] }, 'invalid_message_batch', 'requests.0.custom_id'],
      [{ requests: [request('a', { max_tokens: 3 })] }, 'invalid_message_batch', 'requests.0.params.model: a model is required'],
      [{ requests: [{ custom_id: 'a' }] }, 'invalid_message_batch', 'requests.0.params: an object is required'],
      [{ requests: [] }, 'invalid_message_batch', 'at least one'],
      [{}, 'invalid_message_batch', 'at least one'],
      [{ requests: [1] }, 'invalid_message_batch', 'requests.0: an object'],
    ]
    for (const [body, code, message] of cases) {
      const error = refusal(() => readMessageBatch(body as Record<string, any>))
      assert.equal(error.status, 400)
      assert.equal(error.code, code)
      assert.equal(error.param, 'requests')
      assert.include(error.message, message)
    }
    const many = { requests: Array.from({ length: MAX_MESSAGE_BATCH_REQUESTS + 1 }, (_, i) => request(`r${i}`)) }
    assert.include(refusal(() => readMessageBatch(many)).message, `at most ${MAX_MESSAGE_BATCH_REQUESTS} requests`)
  })
})

test.group('batch output files', () => {
  async function* chunks(text: string, size: number) {
    const bytes = Buffer.from(text)
    for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size)
  }

  /** Each of these ids billed once, as for a batch created with them */
  function onceFor(...ids: string[]): BilledOnce {
    const digests = new CustomIdDigests()
    for (const id of ids) digests.add(id)
    return new BilledOnce(digests.toBuffer(), ids.length)
  }

  const OUTPUT = [
    { custom_id: 'a', response: { status_code: 200, body: { usage: { prompt_tokens: 11, completion_tokens: 5, prompt_tokens_details: { cached_tokens: 4 } } } } },
    { custom_id: 'b', response: { status_code: 200, body: { usage: { input_tokens: 20, output_tokens: 9, output_tokens_details: { reasoning_tokens: 3 } } } } },
    { custom_id: 'c', response: { status_code: 400, body: { error: { message: 'bad' } } } },
    { custom_id: 'd', response: null, error: { code: 'batch_expired' } },
  ]
    .map((l) => JSON.stringify(l))
    .join('\n')

  test('sums every line whichever chunk boundaries cut it (chat, Responses; errors add nothing)', async ({ assert }) => {
    for (const size of [1, 7, 64, 100_000]) {
      const sums = await sumOutputUsage(chunks(`${OUTPUT}\nnot json\n`, size), onceFor('a', 'b', 'c', 'd'))
      assert.deepEqual(sums, { ...noUsage(), promptTokens: 31, completionTokens: 14, cachedTokens: 4, reasoningTokens: 3, requests: 2 }, `chunks of ${size}`)
    }
    // No newline after the last line: still read.
    assert.equal((await sumOutputUsage(chunks(OUTPUT, 5), onceFor('a', 'b', 'c', 'd'))).promptTokens, 31)
  })

  test("a row's counts are capped to what its columns hold; the bill is not", ({ assert }) => {
    const huge = { ...noUsage(), promptTokens: 3_000_000_000, completionTokens: 10, requests: 50_000 }
    assert.include(tokenUsageOf(huge), { promptTokens: 1_000_000_000, completionTokens: 10, totalTokens: 1_000_000_010 })
  })

  const RESULTS = [
    {
      custom_id: 'a',
      result: {
        type: 'succeeded',
        message: { usage: { input_tokens: 10, cache_read_input_tokens: 30, cache_creation_input_tokens: 7, output_tokens: 5, output_tokens_details: { thinking_tokens: 2 } } },
      },
    },
    { custom_id: 'b', result: { type: 'succeeded', message: { usage: { input_tokens: 4, output_tokens: 1 } } } },
    { custom_id: 'c', result: { type: 'errored', error: { type: 'error', error: { type: 'invalid_request_error', message: 'bad' } } } },
    { custom_id: 'd', result: { type: 'canceled' } },
    { custom_id: 'e', result: { type: 'expired' } },
  ]
    .map((l) => JSON.stringify(l))
    .join('\n')

  test("a message batch's results: each succeeded message's usage as /v1/messages reads it (cache reads and writes in the prompt)", async ({ assert }) => {
    for (const size of [1, 13, 100_000]) {
      const sums = await sumResultsUsage(chunks(`${RESULTS}\nnot json\n`, size), onceFor('a', 'b', 'c', 'd', 'e'))
      assert.deepEqual(sums, { ...noUsage(), promptTokens: 51, completionTokens: 6, cachedTokens: 30, reasoningTokens: 2, cacheWriteTokens: 7, requests: 2 }, `chunks of ${size}`)
    }
    assert.include(tokenUsageOf(await sumResultsUsage(chunks(RESULTS, 9), onceFor('a', 'b', 'c', 'd', 'e'))), { promptTokens: 51, cachedTokens: 30, cacheWriteTokens: 7, totalTokens: 57 })
  })
})

test.group('batch lines billed once per custom id', () => {
  async function* one(text: string) {
    yield Buffer.from(text)
  }
  const ok = (id: string, prompt: number) => JSON.stringify({ custom_id: id, response: { status_code: 200, body: { usage: { prompt_tokens: prompt, completion_tokens: 1 } } } })
  const succeeded = (id: string, input: number) => JSON.stringify({ custom_id: id, result: { type: 'succeeded', message: { usage: { input_tokens: input, output_tokens: 1 } } } })

  function onceFor(...ids: string[]): BilledOnce {
    const digests = new CustomIdDigests()
    for (const id of ids) digests.add(id)
    return new BilledOnce(digests.toBuffer(), ids.length)
  }

  test('an output file repeating a custom id, or naming one the batch never had, bills each of its ids once', async ({ assert }) => {
    const once = onceFor('a', 'b')
    const text = [ok('a', 10), ok('a', 1000), ok('b', 20), ok('zzz', 5000), JSON.stringify({ response: { status_code: 200, body: { usage: { prompt_tokens: 7 } } } }), ok('b', 20)].join('\n')
    const sums = await sumOutputUsage(one(text), once)
    assert.include(sums, { promptTokens: 30, completionTokens: 2, requests: 2 })
    assert.equal(once.repeated, 2)
    assert.equal(once.unknown, 2)
  })

  test("a message batch's results likewise", async ({ assert }) => {
    const once = onceFor('a', 'b')
    const sums = await sumResultsUsage(one([succeeded('a', 10), succeeded('a', 10), succeeded('c', 99), succeeded('b', 5)].join('\n')), once)
    assert.include(sums, { promptTokens: 15, requests: 2 })
    assert.deepEqual([once.repeated, once.unknown], [1, 1])
  })

  test('a batch created before its ids were kept bills the first line of each id, at most its request count', async ({ assert }) => {
    const once = new BilledOnce(null, 2)
    const sums = await sumOutputUsage(one([ok('a', 10), ok('a', 10), ok('b', 20), ok('c', 40)].join('\n')), once)
    assert.include(sums, { promptTokens: 30, requests: 2 })
    assert.deepEqual([once.repeated, once.unknown], [1, 1])
  })

  test('the kept ids are a salt and 8 bytes per id, whatever their length', async ({ assert }) => {
    const digests = new CustomIdDigests()
    digests.add('x'.repeat(10_000))
    digests.add('y')
    assert.equal(digests.toBuffer().length, 16 + 2 * 8)
    assert.equal((await readBatchInput(Buffer.from([line('a', { model: 'm' }), line('b', { model: 'm' })].join('\n')))).customIds.length, 32)
  })
})

test.group('batch price', (group) => {
  const price: PriceInfo = { pattern: 'm', inputPico: 2_000_000n, outputPico: 8_000_000n, specificity: 1 }
  let saved: string | undefined
  group.each.setup(() => {
    saved = process.env.BATCH_PRICE_PERCENT
    return () => {
      if (saved === undefined) delete process.env.BATCH_PRICE_PERCENT
      else process.env.BATCH_PRICE_PERCENT = saved
    }
  })

  test('half the price by default, BATCH_PRICE_PERCENT otherwise; the hold at the same share', ({ assert }) => {
    delete process.env.BATCH_PRICE_PERCENT
    const usage = { promptTokens: 303, completionTokens: 63, totalTokens: 366, cachedTokens: 0, reasoningTokens: 0, estimated: false }
    assert.equal(batchCost(price, usage, 3), 555_000_000n)
    assert.equal(batchHold(price, 300, 150, 3), (100n * 2_000_000n + 150n * 8_000_000n) / 2n)
    process.env.BATCH_PRICE_PERCENT = '100'
    assert.equal(batchCost(price, usage, 3), 1_110_000_000n)
    process.env.BATCH_PRICE_PERCENT = 'nonsense'
    assert.equal(batchCost(price, usage, 3), 555_000_000n)
    assert.equal(batchCost(null, usage, 3), 0n)
    // A per-request price: once per answered request.
    const perRequest = { ...price, perRequestPico: 1_000n }
    delete process.env.BATCH_PRICE_PERCENT
    assert.equal(batchCost(perRequest, usage, 3), 555_000_000n + 1_500n)
    assert.equal(batchHold(perRequest, 300, 150, 3), (100n * 2_000_000n + 150n * 8_000_000n + 3_000n) / 2n)
  })
})

test.group('batch sweeper', () => {
  test('sweeps every interval until stopped; stop waits for the sweep under way', async ({ assert }) => {
    let sweeps = 0
    let release: () => void = () => {}
    const sweeper = new BatchSweeper(
      {
        sweep: async () => {
          sweeps++
          if (sweeps === 2) await new Promise<void>((resolve) => (release = resolve))
          return 0
        },
      },
      10,
      () => {}
    )
    sweeper.start()
    while (sweeps < 2) await new Promise((resolve) => setTimeout(resolve, 5))
    let stopped = false
    const stopping = sweeper.stop().then(() => (stopped = true))
    await new Promise((resolve) => setTimeout(resolve, 30))
    assert.isFalse(stopped, 'stop waits for the sweep under way')
    release()
    await stopping
    await new Promise((resolve) => setTimeout(resolve, 30))
    assert.equal(sweeps, 2, 'no sweep after stop')
  })
})
