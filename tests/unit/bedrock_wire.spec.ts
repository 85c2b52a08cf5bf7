import { test } from '@japa/runner'
import { crc32 } from 'node:zlib'
import { authorization, canonicalRequest, sha256Hex, signRequest } from '#gateway/providers/bedrock/sigv4'
import { EventStreamDecoder } from '#gateway/providers/bedrock/event_stream'
import { BedrockToAnthropicSse } from '#gateway/providers/bedrock/bedrock_stream'
import { awsClock, bedrockAdapter, bedrockStatus, isClaude } from '#gateway/providers/bedrock/bedrock_adapter'
import { bedrockKeySecrets, bedrockRegion, environmentAuth, parseBedrockKey } from '#gateway/providers/bedrock/bedrock_settings'
import { converseBody, converseRequest } from '#gateway/providers/bedrock/converse_request'
import { ConverseToAnthropicJson, ConverseToAnthropicSse } from '#gateway/providers/bedrock/converse_answer'
import { GatewayError } from '#exceptions/gateway_error'
import { decodeAnthropicUsage } from '#gateway/dialects/anthropic_messages/response'
import { normaliseBaseUrl } from '#gateway/providers/base_url'
import { frame } from '#tests/fixtures/mock_bedrock'
import type { ChannelInfo } from '#gateway/types'
import { answerBudget, answerLimits } from '#gateway/upstream/answer_limits'
import { withoutChannelSecrets } from '#gateway/upstream/channel_secrets'

/**
 * AWS's published SigV4 test suite (aws-sig-v4-test-suite: credentials
 * AKIDEXAMPLE, region us-east-1, service "service", 20150830T123600Z, host
 * example.amazonaws.com), the cases that apply to what the gateway signs.
 */
const SUITE = {
  credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' },
  region: 'us-east-1',
  service: 'service',
  amzDate: '20150830T123600Z',
  host: 'example.amazonaws.com',
}
const VECTORS: Array<{ name: string; method: string; path: string; query?: string; signature: string }> = [
  { name: 'get-vanilla', method: 'GET', path: '/', signature: '5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31' },
  { name: 'get-vanilla-query-order-key-case', method: 'GET', path: '/', query: 'Param2=value2&Param1=value1', signature: 'b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500' },
  { name: 'get-utf8', method: 'GET', path: '/ሴ', signature: '8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85' },
  { name: 'post-vanilla', method: 'POST', path: '/', signature: '5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b' },
  { name: 'post-vanilla-query', method: 'POST', path: '/', query: 'Param1=value1', signature: '28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11' },
]

test.group('SigV4 against AWS test suite vectors', () => {
  for (const vector of VECTORS) {
    test(vector.name, ({ assert }) => {
      const header = authorization(
        {
          method: vector.method,
          host: SUITE.host,
          path: vector.path,
          query: vector.query,
          headers: { 'x-amz-date': SUITE.amzDate },
          payloadHash: sha256Hex(''),
          region: SUITE.region,
          service: SUITE.service,
          amzDate: SUITE.amzDate,
        },
        SUITE.credentials
      )
      assert.equal(
        header,
        `AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=${vector.signature}`
      )
    })
  }

  test("Bedrock's path is encoded twice in the canonical request (the model id's colon sent as %3A)", ({ assert }) => {
    const { text } = canonicalRequest({
      method: 'POST',
      host: 'bedrock-runtime.us-east-1.amazonaws.com',
      path: '/model/anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke',
      headers: { 'x-amz-date': SUITE.amzDate },
      payloadHash: sha256Hex('{}'),
      region: 'us-east-1',
      service: 'bedrock',
      amzDate: SUITE.amzDate,
    })
    assert.equal(text.split('\n')[1], '/model/anthropic.claude-sonnet-4-5-20250929-v1%253A0/invoke')
  })

  test('a session token is sent and signed', ({ assert }) => {
    const headers: Record<string, string> = { 'content-type': 'application/json' }
    signRequest(
      { method: 'POST', host: 'h', path: '/', headers, body: '{}' },
      { ...SUITE.credentials, sessionToken: 'tok/en+=' },
      'us-east-1',
      'bedrock',
      new Date('2015-08-30T12:36:00Z')
    )
    assert.equal(headers['x-amz-date'], '20150830T123600Z')
    assert.equal(headers['x-amz-security-token'], 'tok/en+=')
    assert.include(headers.authorization, 'SignedHeaders=content-type;host;x-amz-date;x-amz-security-token,')
  })
})

function chunkEvent(event: Record<string, unknown>) {
  return frame(
    { ':event-type': 'chunk', ':content-type': 'application/json', ':message-type': 'event' },
    JSON.stringify({ bytes: Buffer.from(JSON.stringify(event)).toString('base64'), p: 'xyz' })
  )
}

test.group('Bedrock event stream', () => {
  test('frames are decoded whatever the chunking: byte by byte, split, several in one chunk', ({ assert }) => {
    const events = [
      { type: 'message_start', message: { id: 'm', usage: { input_tokens: 3, output_tokens: 1 } } },
      { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'hé\n"x"' } },
      { type: 'message_stop' },
    ]
    const bytes = Buffer.concat(events.map(chunkEvent))
    for (const size of [1, 7, 64, bytes.length]) {
      const decoder = new BedrockToAnthropicSse()
      let out = ''
      for (let at = 0; at < bytes.length; at += size) out += decoder.push(bytes.subarray(at, at + size))?.toString('utf8') ?? ''
      assert.equal(out, events.map((e) => `event: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`).join(''), `chunks of ${size}`)
    }
  })

  test("an exception message becomes Anthropic's error event; a corrupt frame throws", ({ assert }) => {
    const decoder = new BedrockToAnthropicSse()
    const out = decoder.push(
      frame({ ':exception-type': 'throttlingException', ':message-type': 'exception' }, JSON.stringify({ message: 'Too many tokens' }))
    )
    assert.equal(
      out!.toString(),
      `event: error\ndata: ${JSON.stringify({ type: 'error', error: { type: 'rate_limit_error', message: 'throttlingException: Too many tokens' } })}\n\n`
    )
    const broken = chunkEvent({ type: 'ping' })
    broken[broken.length - 1] ^= 1
    assert.throws(() => new EventStreamDecoder().push(broken), /checksum/)
  })

  test('a large frame trickled in small chunks is joined once, not on every chunk (the event loop is not held)', ({ assert }) => {
    // 8 MB in 4 KB chunks: joined on every chunk this copied ~8 GB (seconds of a blocked event loop).
    const big = frame({ ':event-type': 'chunk', ':message-type': 'event' }, Buffer.alloc(8 * 1024 * 1024, 0x61))
    const decoder = new EventStreamDecoder()
    const started = performance.now()
    let messages = 0
    for (let at = 0; at < big.length; at += 4096) messages += decoder.push(big.subarray(at, at + 4096)).length
    const ms = performance.now() - started
    assert.equal(messages, 1)
    assert.isFalse(decoder.pending)
    assert.isBelow(ms, 1500, `decoded in ${ms.toFixed(0)} ms`)
  })

  test("a hostile prelude throws as soon as it is in: a length of 2^31, a header length past the frame, a prelude's checksum", ({ assert }) => {
    const prelude = (total: number, headers: number, fix = true) => {
      const bytes = Buffer.alloc(12)
      bytes.writeUInt32BE(total, 0)
      bytes.writeUInt32BE(headers, 4)
      bytes.writeUInt32BE(fix ? crc32(bytes.subarray(0, 8)) : 0, 8)
      return bytes
    }
    // Not waited for: the 12 bytes of the prelude are enough to refuse it.
    assert.throws(() => new EventStreamDecoder().push(prelude(2 ** 31, 0)), /bad message length 2147483648/)
    assert.throws(() => new EventStreamDecoder().push(prelude(100, 200)), /bad message length 100/)
    assert.throws(() => new EventStreamDecoder().push(prelude(100, 10, false)), /prelude checksum/)
    // ...also when it comes a byte at a time after a good frame
    const decoder = new EventStreamDecoder()
    const bytes = Buffer.concat([chunkEvent({ type: 'ping' }), prelude(0xffffffff, 0)])
    let seen = 0
    assert.throws(() => {
      for (let at = 0; at < bytes.length; at++) seen += decoder.push(bytes.subarray(at, at + 1)).length
    }, /bad message length/)
    assert.equal(seen, 1)
  })

  test('a body that ends inside a frame is a failure of the read, not a clean end (InvokeModel and Converse streams)', ({ assert }) => {
    const whole = Buffer.concat([chunkEvent({ type: 'message_start', message: { id: 'm' } }), chunkEvent({ type: 'message_stop' })])
    const invoke = new BedrockToAnthropicSse()
    invoke.push(whole.subarray(0, whole.length - 5))
    assert.throws(() => invoke.end(), /ended inside a message/)
    const complete = new BedrockToAnthropicSse()
    complete.push(whole)
    assert.isNull(complete.end())

    const converse = Buffer.concat([
      converseEvent('messageStart', { role: 'assistant' }),
      converseEvent('contentBlockDelta', { contentBlockIndex: 0, delta: { text: 'Hi' } }),
      converseEvent('messageStop', { stopReason: 'end_turn' }),
      converseEvent('metadata', { usage: { inputTokens: 3, outputTokens: 1 } }),
    ])
    const cut = new ConverseToAnthropicSse('m', 'x')
    cut.push(converse.subarray(0, converse.length - 3))
    // Its stop came, its usage was in the frame cut: no message_stop written as if it had ended
    assert.throws(() => cut.end(), /ended inside a message/)
  })
})

function channel(baseUrl: string, apiKey: string): ChannelInfo {
  return {
    id: 1, name: 'b', provider: 'bedrock', baseUrl, apiKey, models: [], modelMapping: {}, extraHeaders: {},
    priority: 0, weight: 1, enabled: true, disabledReason: null,
    timeouts: { connect: 1000, firstByte: 1000, idle: 1000, total: 1000 },
  }
}

test.group('Bedrock channel settings', () => {
  test('base URL: a bare region, the AWS host, another base with ?region=; none refused', ({ assert }) => {
    assert.equal(normaliseBaseUrl('bedrock', 'us-west-2'), 'https://bedrock-runtime.us-west-2.amazonaws.com')
    assert.equal(normaliseBaseUrl('bedrock', 'https://bedrock-runtime.eu-central-1.amazonaws.com/'), 'https://bedrock-runtime.eu-central-1.amazonaws.com')
    assert.equal(normaliseBaseUrl('bedrock', 'http://proxy:8080/?region=ap-southeast-2'), 'http://proxy:8080?region=ap-southeast-2')
    assert.equal(bedrockRegion('http://proxy:8080?region=ap-southeast-2'), 'ap-southeast-2')
    assert.throws(() => normaliseBaseUrl('bedrock', 'http://proxy:8080'), /names its region/)
  })

  test('key: access key id and secret (and session token), or a Bedrock API key', ({ assert }) => {
    assert.deepEqual(parseBedrockKey('AKIA1:sec/ret'), { kind: 'sigv4', credentials: { accessKeyId: 'AKIA1', secretAccessKey: 'sec/ret' } })
    assert.deepEqual(parseBedrockKey('AKIA1:s:tok'), { kind: 'sigv4', credentials: { accessKeyId: 'AKIA1', secretAccessKey: 's', sessionToken: 'tok' } })
    assert.deepEqual(parseBedrockKey('ABSKQmVkcm9jaw=='), { kind: 'bearer', token: 'ABSKQmVkcm9jaw==' })
  })

  test('invoke request: model in the path, no model or stream in the body, bedrock anthropic_version, betas in the body', ({ assert }) => {
    const request = bedrockAdapter.request(channel('https://bedrock-runtime.us-east-1.amazonaws.com', 'AKID:SECRET'), {
      operation: 'generate',
      dialect: 'anthropic_messages',
      model: 'us.anthropic.claude-sonnet-4-5-20250929-v1:0',
      stream: true,
      body: JSON.stringify({ model: 'x', stream: true, max_tokens: 5, messages: [] }),
      clientHeaders: { 'anthropic-beta': 'a-1, b-2' },
    })
    assert.equal(request.origin, 'https://bedrock-runtime.us-east-1.amazonaws.com')
    assert.equal(request.path, '/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke-with-response-stream')
    assert.deepEqual(JSON.parse(String(request.body)), { anthropic_version: 'bedrock-2023-05-31', max_tokens: 5, messages: [], anthropic_beta: ['a-1', 'b-2'] })
    assert.match(request.headers.authorization, /^AWS4-HMAC-SHA256 Credential=AKID\/\d{8}\/us-east-1\/bedrock\/aws4_request, /)
    const bearer = bedrockAdapter.request(channel('https://bedrock-runtime.us-east-1.amazonaws.com', 'ABSKkey'), {
      operation: 'generate', dialect: 'anthropic_messages', model: 'm', stream: false, body: '{}', clientHeaders: {},
    })
    assert.equal(bearer.headers.authorization, 'Bearer ABSKkey')
  })

  test("each part of a Bedrock key is concealed in upstream words, not only the whole key", ({ assert }) => {
    const bedrock = channel('https://bedrock-runtime.us-east-1.amazonaws.com', 'AKIAEXAMPLEID:wJalrSECRETkey:SessionTokenValue')
    const text = withoutChannelSecrets('key AKIAEXAMPLEID secret wJalrSECRETkey token SessionTokenValue', bedrock)
    assert.notInclude(text, 'AKIAEXAMPLEID')
    assert.notInclude(text, 'wJalrSECRETkey')
    assert.notInclude(text, 'SessionTokenValue')
  })

  test("AWS's error types in the statuses the dispatcher acts on", ({ assert }) => {
    const type = (name: string) => ({ 'x-amzn-errortype': `${name}:http://internal.amazon.com/coral/com.amazon.bedrock/` })
    assert.equal(bedrockStatus(403, type('UnrecognizedClientException')), 401)
    assert.equal(bedrockStatus(403, type('InvalidSignatureException')), 401)
    assert.equal(bedrockStatus(403, type('AccessDeniedException')), 403)
    assert.equal(bedrockStatus(400, type('ValidationException')), 400)
    assert.equal(bedrockStatus(429, type('ThrottlingException')), 429)
    assert.equal(bedrockStatus(408, type('ModelTimeoutException')), 504)
    assert.equal(bedrockStatus(200, {}), 200)
  })

  test("a refused signature whose answer's Date is minutes off the gateway's clock: a passing failure, the offset learnt and signed with", ({ assert }) => {
    const refused = (date: number) => ({
      'x-amzn-errortype': 'InvalidSignatureException:http://internal.amazon.com/coral/com.amazon.bedrock/',
      'date': new Date(date).toUTCString(),
    })
    try {
      // A second or two off (the Date header's rounding, the trip): a wrong key is a wrong key
      assert.equal(bedrockStatus(403, refused(Date.now() + 2000)), 401)
      assert.equal(awsClock.offsetMs, 0)
      assert.equal(bedrockStatus(403, refused(Date.now() - 7 * 60_000)), 503)
      assert.closeTo(awsClock.offsetMs, -7 * 60_000, 2000)
      // Signed on AWS's time from then on
      const request = bedrockAdapter.request(channel('https://bedrock-runtime.us-east-1.amazonaws.com', 'AKID:SECRET'), {
        operation: 'generate', dialect: 'anthropic_messages', model: 'anthropic.claude-x-v1:0', stream: false, body: '{"messages":[]}', clientHeaders: {},
      })
      const signed = request.headers['x-amz-date']
      const at = Date.parse(`${signed.slice(0, 4)}-${signed.slice(4, 6)}-${signed.slice(6, 11)}:${signed.slice(11, 13)}:${signed.slice(13)}`)
      assert.closeTo(at - Date.now(), -7 * 60_000, 3000)
      // ...and a refusal on that corrected clock is bad credentials again
      assert.equal(bedrockStatus(403, refused(Date.now() - 7 * 60_000)), 401)
    } finally {
      awsClock.offsetMs = 0
    }
  })
})

/** One converse-stream event, framed as Bedrock sends it. */
function converseEvent(type: string, payload: Record<string, unknown>): Buffer {
  return frame({ ':event-type': type, ':content-type': 'application/json', ':message-type': 'event' }, JSON.stringify({ ...payload, p: 'abc' }))
}

function sseEvents(text: string): Array<{ event: string; data: any }> {
  return text
    .split('\n\n')
    .filter(Boolean)
    .map((block) => {
      const [eventLine, dataLine] = block.split('\n')
      return { event: eventLine.slice(7), data: JSON.parse(dataLine.slice(6)) }
    })
}

test.group('Bedrock Converse', () => {
  test('Claude ids and inference profiles go to InvokeModel, every other model to Converse', ({ assert }) => {
    for (const id of ['anthropic.claude-3-5-haiku-20241022-v1:0', 'us.anthropic.claude-sonnet-4-5-20250929-v1:0', 'global.anthropic.claude-x', 'arn:aws:bedrock:us-east-1:123:inference-profile/us.anthropic.claude-x']) {
      assert.isTrue(isClaude(id), id)
    }
    for (const id of ['meta.llama4-maverick-17b-instruct-v1:0', 'us.amazon.nova-pro-v1:0', 'mistral.mistral-large-2407-v1:0', 'arn:aws:bedrock:us-east-1:123:application-inference-profile/abc123', 'cohere.anthropic-like']) {
      assert.isFalse(isClaude(id), id)
    }
    const request = bedrockAdapter.request(channel('https://bedrock-runtime.us-east-1.amazonaws.com', 'AKID:SECRET'), {
      operation: 'generate', dialect: 'anthropic_messages', model: 'us.amazon.nova-pro-v1:0', stream: true,
      body: JSON.stringify({ model: 'x', stream: true, max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] }), clientHeaders: { 'anthropic-beta': 'a-1' },
    })
    assert.equal(request.path, '/model/us.amazon.nova-pro-v1%3A0/converse-stream')
    assert.equal(request.headers.accept, 'application/vnd.amazon.eventstream')
    assert.deepEqual(JSON.parse(String(request.body)), { messages: [{ role: 'user', content: [{ text: 'hi' }] }], inferenceConfig: { maxTokens: 5 } })
    assert.match(request.headers.authorization, /^AWS4-HMAC-SHA256 Credential=AKID\/\d{8}\/us-east-1\/bedrock\/aws4_request, /)
  })

  test('the Anthropic body as a Converse request: system, images, documents, tools, tool results, thinking, cache points, inference config', ({ assert }) => {
    const body = converseBody({
      model: 'x',
      stream: true,
      max_tokens: 256,
      temperature: 0.2,
      top_p: 0.8,
      top_k: 5,
      stop_sequences: ['END'],
      system: [{ type: 'text', text: 'Be brief.', cache_control: { type: 'ephemeral' } }, { type: 'text', text: 'Speak French.' }],
      tools: [{ name: 'get_weather', description: 'Weather', input_schema: { type: 'object', properties: { city: { type: 'string' } } } }, { name: 'noop', input_schema: { type: 'object' } }],
      tool_choice: { type: 'any' },
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'Look' },
            { type: 'image', source: { type: 'base64', media_type: 'image/jpeg', data: 'AAAA' } },
            { type: 'document', title: 'Q3 report.pdf', source: { type: 'base64', media_type: 'application/pdf', data: 'JVBE' } },
            { type: 'text', text: '' },
          ],
        },
        {
          role: 'assistant',
          content: [
            { type: 'thinking', thinking: 'Hmm', signature: 'sig' },
            { type: 'tool_use', id: 't1', name: 'get_weather', input: { city: 'Paris' }, cache_control: { type: 'ephemeral' } },
          ],
        },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 't1', content: [{ type: 'text', text: 'No such city' }], is_error: true }, { type: 'text', text: 'and?' }] },
      ],
    })
    assert.deepEqual(body, {
      messages: [
        {
          role: 'user',
          content: [
            { text: 'Look' },
            { image: { format: 'jpeg', source: { bytes: 'AAAA' } } },
            { document: { format: 'pdf', name: 'Q3 report pdf', source: { bytes: 'JVBE' } } },
          ],
        },
        {
          role: 'assistant',
          content: [
            { reasoningContent: { reasoningText: { text: 'Hmm', signature: 'sig' } } },
            { toolUse: { toolUseId: 't1', name: 'get_weather', input: { city: 'Paris' } } },
            { cachePoint: { type: 'default' } },
          ],
        },
        { role: 'user', content: [{ toolResult: { toolUseId: 't1', content: [{ text: 'No such city' }], status: 'error' } }, { text: 'and?' }] },
      ],
      system: [{ text: 'Be brief.' }, { cachePoint: { type: 'default' } }, { text: 'Speak French.' }],
      inferenceConfig: { maxTokens: 256, temperature: 0.2, topP: 0.8, stopSequences: ['END'] },
      toolConfig: {
        tools: [
          { toolSpec: { name: 'get_weather', description: 'Weather', inputSchema: { json: { type: 'object', properties: { city: { type: 'string' } } } } } },
          { toolSpec: { name: 'noop', inputSchema: { json: { type: 'object' } } } },
        ],
        toolChoice: { any: {} },
      },
    })
    assert.deepEqual((converseBody({ messages: [], tools: [{ name: 'f', input_schema: {} }], tool_choice: { type: 'tool', name: 'f' } }).toolConfig as any).toolChoice, { tool: { name: 'f' } })
    assert.notProperty(converseBody({ messages: [], tools: [{ name: 'f', input_schema: {} }], tool_choice: { type: 'none' } }).toolConfig as any, 'toolChoice')
  })

  test('what Converse cannot take is a 400: an image by URL, a server tool', ({ assert }) => {
    const refused = (body: Record<string, unknown>) => {
      try {
        converseBody(body)
      } catch (error) {
        assert.instanceOf(error, GatewayError)
        return (error as GatewayError).status
      }
      return null
    }
    assert.equal(refused({ messages: [{ role: 'user', content: [{ type: 'image', source: { type: 'url', url: 'https://x/cat.png' } }] }] }), 400)
    assert.equal(refused({ messages: [{ role: 'user', content: 'hi' }], tools: [{ type: 'web_search_20250305', name: 'web_search' }] }), 400)
  })

  test('a whole Converse answer as an Anthropic message, read to the end of the body', ({ assert }) => {
    const decoder = new ConverseToAnthropicJson('msg_bdrk_r1', 'us.amazon.nova-pro-v1:0')
    const answer = JSON.stringify({
      output: { message: { role: 'assistant', content: [{ reasoningContent: { reasoningText: { text: 'Hmm', signature: 's' } } }, { text: 'Checking.' }, { toolUse: { toolUseId: 't1', name: 'f', input: { a: 1 } } }] } },
      stopReason: 'tool_use',
      usage: { inputTokens: 7, outputTokens: 3, totalTokens: 40, cacheReadInputTokens: 20, cacheWriteInputTokens: 10 },
    })
    const bytes = Buffer.from(answer)
    for (let at = 0; at < bytes.length; at += 9) assert.isNull(decoder.push(bytes.subarray(at, at + 9)))
    assert.deepEqual(JSON.parse(decoder.end()!.toString()), {
      id: 'msg_bdrk_r1',
      type: 'message',
      role: 'assistant',
      model: 'us.amazon.nova-pro-v1:0',
      content: [{ type: 'thinking', thinking: 'Hmm', signature: 's' }, { type: 'text', text: 'Checking.' }, { type: 'tool_use', id: 't1', name: 'f', input: { a: 1 } }],
      stop_reason: 'tool_use',
      stop_sequence: null,
      usage: { input_tokens: 7, output_tokens: 3, cache_read_input_tokens: 20, cache_creation_input_tokens: 10 },
    })
    const filtered = new ConverseToAnthropicJson('m', 'x')
    filtered.push(Buffer.from(JSON.stringify({ output: { message: { content: [] } }, stopReason: 'guardrail_intervened', usage: {} })))
    const refusal = JSON.parse(filtered.end()!.toString())
    assert.equal(refusal.stop_reason, 'refusal')
    // `usage: {}`, or none: counts that say nothing (the gateway estimates), not zero tokens
    assert.deepEqual(refusal.usage, { input_tokens: null, output_tokens: null })
    // A negative count is handed on as reported, for the usage reader to refuse (estimated), not made 0 (free)
    const negative = new ConverseToAnthropicJson('m', 'x')
    negative.push(Buffer.from(JSON.stringify({ output: { message: { content: [{ text: 'Hi' }] } }, usage: { inputTokens: -5, outputTokens: 3 } })))
    const negativeUsage = JSON.parse(negative.end()!.toString()).usage
    assert.equal(negativeUsage.input_tokens, -5)
    assert.isNull(decodeAnthropicUsage(negativeUsage))
    // A tool input sent as a string of JSON is read as the object it holds; in a stream, an input sent as a JSON value is its text
    const stringInput = new ConverseToAnthropicJson('m', 'x')
    stringInput.push(Buffer.from(JSON.stringify({ output: { message: { content: [{ toolUse: { toolUseId: 't', name: 'f', input: '{"city":"Paris"}' } }] } }, stopReason: 'tool_use' })))
    assert.deepEqual(JSON.parse(stringInput.end()!.toString()).content[0].input, { city: 'Paris' })
    const objectDelta = new ConverseToAnthropicSse('m', 'x')
    const deltas = sseEvents(
      objectDelta.push(
        Buffer.concat([
          converseEvent('contentBlockStart', { contentBlockIndex: 0, start: { toolUse: { toolUseId: 't', name: 'f' } } }),
          converseEvent('contentBlockDelta', { contentBlockIndex: 0, delta: { toolUse: { input: { city: 'Paris' } } } }),
        ])
      )!.toString()
    )
    assert.equal(deltas[deltas.length - 1].data.delta.partial_json, '{"city":"Paris"}')
    const bare = new ConverseToAnthropicJson('m', 'x')
    bare.push(Buffer.from(JSON.stringify({ output: { message: { content: [{ text: 'Hi' }] } }, stopReason: 'end_turn' })))
    assert.deepEqual(JSON.parse(bare.end()!.toString()).usage, { input_tokens: null, output_tokens: null })
  })

  test("a whole Converse answer's bytes past its first MB are taken from the answers' budget while it is read, given back at its end or failure", ({ assert }) => {
    const MB = 1024 * 1024
    const limit = answerLimits.inflightBytes
    const before = answerBudget.used
    answerLimits.inflightBytes = 1.5 * MB
    try {
      const decoder = new ConverseToAnthropicJson('m', 'x')
      const text = 'y'.repeat(2 * MB)
      const body = Buffer.from(JSON.stringify({ output: { message: { content: [{ text }] } }, stopReason: 'end_turn', usage: { inputTokens: 1, outputTokens: 2 } }))
      for (let at = 0; at < body.length; at += 64 * 1024) decoder.push(body.subarray(at, at + 64 * 1024))
      assert.equal(answerBudget.used - before, body.length - MB)
      // A second one at once, past the budget: refused while it is read
      const second = new ConverseToAnthropicJson('m2', 'x')
      assert.throws(() => {
        for (let at = 0; at < body.length; at += 64 * 1024) second.push(body.subarray(at, at + 64 * 1024))
      }, /large upstream answers/)
      second.dispose()
      assert.equal(answerBudget.used - before, body.length - MB)
      assert.equal(JSON.parse(decoder.end()!.toString()).content[0].text.length, text.length)
      decoder.dispose()
      assert.equal(answerBudget.used, before)
    } finally {
      answerLimits.inflightBytes = limit
    }
  })

  test('converse-stream as Anthropic SSE whatever the chunking: text without a start, a tool block, the usage from metadata', ({ assert }) => {
    const bytes = Buffer.concat([
      converseEvent('messageStart', { role: 'assistant' }),
      converseEvent('contentBlockDelta', { contentBlockIndex: 0, delta: { text: 'Let me' } }),
      converseEvent('contentBlockDelta', { contentBlockIndex: 0, delta: { text: ' check.' } }),
      converseEvent('contentBlockStop', { contentBlockIndex: 0 }),
      converseEvent('contentBlockStart', { contentBlockIndex: 1, start: { toolUse: { toolUseId: 't1', name: 'f' } } }),
      converseEvent('contentBlockDelta', { contentBlockIndex: 1, delta: { toolUse: { input: '{"a":' } } }),
      converseEvent('contentBlockDelta', { contentBlockIndex: 1, delta: { toolUse: { input: '1}' } } }),
      converseEvent('contentBlockStop', { contentBlockIndex: 1 }),
      converseEvent('messageStop', { stopReason: 'tool_use' }),
      converseEvent('metadata', { usage: { inputTokens: 7, outputTokens: 5, totalTokens: 12, cacheReadInputTokens: 3 }, metrics: { latencyMs: 9 } }),
    ])
    const expected = [
      ['message_start', { type: 'message_start', message: { id: 'msg_1', type: 'message', role: 'assistant', model: 'm', content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: null, output_tokens: null } } }],
      ['content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }],
      ['content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Let me' } }],
      ['content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: ' check.' } }],
      ['content_block_stop', { type: 'content_block_stop', index: 0 }],
      ['content_block_start', { type: 'content_block_start', index: 1, content_block: { type: 'tool_use', id: 't1', name: 'f', input: {} } }],
      ['content_block_delta', { type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: '{"a":' } }],
      ['content_block_delta', { type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: '1}' } }],
      ['content_block_stop', { type: 'content_block_stop', index: 1 }],
      ['message_delta', { type: 'message_delta', delta: { stop_reason: 'tool_use', stop_sequence: null }, usage: { input_tokens: 7, output_tokens: 5, cache_read_input_tokens: 3, cache_creation_input_tokens: 0 } }],
      ['message_stop', { type: 'message_stop' }],
    ].map(([event, data]) => ({ event, data }))
    for (const size of [1, 13, bytes.length]) {
      const decoder = new ConverseToAnthropicSse('msg_1', 'm')
      let out = ''
      for (let at = 0; at < bytes.length; at += size) out += decoder.push(bytes.subarray(at, at + size))?.toString('utf8') ?? ''
      assert.isNull(decoder.end())
      assert.deepEqual(sseEvents(out), expected, `chunks of ${size}`)
    }
  })

  test('a stream that stops without metadata still ends as a message; one cut before its stop does not; exceptions as error events', ({ assert }) => {
    const stopped = new ConverseToAnthropicSse('m1', 'm')
    stopped.push(Buffer.concat([converseEvent('messageStart', { role: 'assistant' }), converseEvent('contentBlockDelta', { contentBlockIndex: 0, delta: { text: 'Hi' } }), converseEvent('messageStop', { stopReason: 'max_tokens' })]))
    const tail = sseEvents(stopped.end()!.toString())
    assert.deepEqual(tail.map((e) => e.event), ['message_delta', 'message_stop'])
    assert.equal(tail[0].data.delta.stop_reason, 'max_tokens')
    assert.notProperty(tail[0].data, 'usage')

    const cut = new ConverseToAnthropicSse('m2', 'm')
    cut.push(Buffer.concat([converseEvent('messageStart', { role: 'assistant' }), converseEvent('contentBlockDelta', { contentBlockIndex: 0, delta: { text: 'Hi' } })]))
    assert.isNull(cut.end())

    const failed = new ConverseToAnthropicSse('m3', 'm')
    const out = failed.push(frame({ ':exception-type': 'throttlingException', ':message-type': 'exception' }, JSON.stringify({ message: 'Too many tokens' })))
    assert.deepEqual(sseEvents(out!.toString()), [{ event: 'error', data: { type: 'error', error: { type: 'rate_limit_error', message: 'throttlingException: Too many tokens' } } }])
  })

  test("the model's own fields by family: Claude's thinking, effort, top_k and betas; Nova 2's reasoningConfig and topK; gpt-oss's reasoning_effort; none for Llama", ({ assert }) => {
    const thinking = { thinking: { type: 'enabled', budget_tokens: 4096 }, max_tokens: 8192, top_k: 7, temperature: 0.3, top_p: 0.9, messages: [{ role: 'user', content: 'hi' }] }
    const profile = 'arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3'
    // An opaque profile: its family read from the client's model name; the client's betas as anthropic_beta
    const claude = converseBody(thinking, { model: profile, clientModel: 'claude-sonnet-4-5', betas: ['interleaved-thinking-2025-05-14'] })
    assert.deepEqual(claude.additionalModelRequestFields, { thinking: { type: 'enabled', budget_tokens: 4096 }, top_k: 7, anthropic_beta: ['interleaved-thinking-2025-05-14'] })
    assert.deepEqual(claude.inferenceConfig, { maxTokens: 8192, temperature: 0.3, topP: 0.9 })
    assert.deepEqual(converseBody({ ...thinking, thinking: { type: 'adaptive' }, output_config: { effort: 'high' } }, { model: 'anthropic.claude-opus-4-6-v1' }).additionalModelRequestFields, {
      thinking: { type: 'adaptive' }, output_config: { effort: 'high' }, top_k: 7,
    })
    assert.notProperty(converseBody(thinking, { model: profile, clientModel: 'my-model' }), 'additionalModelRequestFields')
    // Nova 2: an effort from the budget (4,096: medium); high effort leaves maxTokens, temperature and topP unset
    assert.deepEqual(converseBody(thinking, { model: 'us.amazon.nova-2-lite-v1:0' }).additionalModelRequestFields, { reasoningConfig: { type: 'enabled', maxReasoningEffort: 'medium' }, inferenceConfig: { topK: 7 } })
    const high = converseBody({ ...thinking, thinking: { type: 'enabled', budget_tokens: 24_576 } }, { model: 'global.amazon.nova-2-lite-v1:0' })
    assert.deepEqual(high.additionalModelRequestFields, { reasoningConfig: { type: 'enabled', maxReasoningEffort: 'high' } })
    assert.notProperty(high, 'inferenceConfig')
    assert.deepEqual(converseBody({ ...thinking, output_config: { effort: 'low' } }, { model: 'amazon.nova-2-lite-v1:0' }).additionalModelRequestFields, { reasoningConfig: { type: 'enabled', maxReasoningEffort: 'low' }, inferenceConfig: { topK: 7 } })
    // The first Novas: topK, no thinking; gpt-oss: reasoning_effort; Llama, Mistral, DeepSeek: nothing of theirs
    assert.deepEqual(converseBody(thinking, { model: 'us.amazon.nova-pro-v1:0' }).additionalModelRequestFields, { inferenceConfig: { topK: 7 } })
    assert.deepEqual(converseBody(thinking, { model: 'openai.gpt-oss-120b-1:0' }).additionalModelRequestFields, { reasoning_effort: 'medium' })
    for (const model of ['meta.llama4-maverick-17b-instruct-v1:0', 'mistral.mistral-large-2407-v1:0', 'us.deepseek.r1-v1:0']) {
      assert.notProperty(converseBody(thinking, { model }), 'additionalModelRequestFields', model)
    }
    // Signed thinking whose text was left out still goes back (its signature is what Claude checks)
    const replay = converseBody({ messages: [{ role: 'assistant', content: [{ type: 'thinking', thinking: '', signature: 'sig' }, { type: 'text', text: 'Hi' }] }] })
    assert.deepEqual((replay.messages as any)[0].content[0], { reasoningContent: { reasoningText: { text: '', signature: 'sig' } } })
  })

  test('a JSON schema answer: Converse\'s outputConfig for Claude, else a forced tool read back as the text (whole and streamed)', ({ assert }) => {
    const schema = { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] }
    const asked = { max_tokens: 100, messages: [{ role: 'user', content: 'Where?' }], output_config: { format: { type: 'json_schema', schema } } }
    const claude = converseRequest(asked, { model: 'arn:aws:bedrock:us-east-1:1:application-inference-profile/p', clientModel: 'claude-haiku-4-5' })
    assert.isNull(claude.jsonTool)
    assert.deepEqual(claude.body.outputConfig, { textFormat: { type: 'json_schema', structure: { jsonSchema: { schema: JSON.stringify({ ...schema, additionalProperties: false }), name: 'response' } } } })
    const llama = converseRequest(asked, { model: 'meta.llama4-maverick-17b-instruct-v1:0' })
    assert.equal(llama.jsonTool, 'json_response')
    assert.notProperty(llama.body, 'outputConfig')
    assert.deepEqual(llama.body.toolConfig, {
      tools: [{ toolSpec: { name: 'json_response', description: 'Answer with a JSON value that follows this schema.', inputSchema: { json: schema } } }],
      toolChoice: { tool: { name: 'json_response' } },
    })
    // Beside the client's tools (one named like it): any tool required; a tool the client forced stays forced
    const tools = [{ name: 'json_response', input_schema: { type: 'object' } }]
    const beside = converseRequest({ ...asked, tools }, { model: 'us.amazon.nova-pro-v1:0' })
    assert.equal(beside.jsonTool, 'json_response_2')
    assert.deepEqual((beside.body.toolConfig as any).toolChoice, { any: {} })
    assert.deepEqual((converseRequest({ ...asked, tools, tool_choice: { type: 'tool', name: 'json_response' } }, { model: 'x.y' }).body.toolConfig as any).toolChoice, { tool: { name: 'json_response' } })

    const whole = new ConverseToAnthropicJson('m', 'x', 'json_response')
    whole.push(Buffer.from(JSON.stringify({ output: { message: { content: [{ toolUse: { toolUseId: 't', name: 'json_response', input: { city: 'Paris' } } }] } }, stopReason: 'tool_use' })))
    const message = JSON.parse(whole.end()!.toString())
    assert.deepEqual(message.content, [{ type: 'text', text: '{"city":"Paris"}' }])
    assert.equal(message.stop_reason, 'end_turn')
    // Another tool called beside it: the stop stays tool_use
    const both = new ConverseToAnthropicJson('m', 'x', 'json_response')
    both.push(Buffer.from(JSON.stringify({ output: { message: { content: [{ toolUse: { toolUseId: 't', name: 'f', input: {} } }] } }, stopReason: 'tool_use' })))
    assert.equal(JSON.parse(both.end()!.toString()).stop_reason, 'tool_use')

    const stream = new ConverseToAnthropicSse('m', 'x', 'json_response')
    const events = sseEvents(
      stream.push(
        Buffer.concat([
          converseEvent('messageStart', { role: 'assistant' }),
          converseEvent('contentBlockStart', { contentBlockIndex: 0, start: { toolUse: { toolUseId: 't', name: 'json_response' } } }),
          converseEvent('contentBlockDelta', { contentBlockIndex: 0, delta: { toolUse: { input: '{"city":' } } }),
          converseEvent('contentBlockDelta', { contentBlockIndex: 0, delta: { toolUse: { input: '"Paris"}' } } }),
          converseEvent('contentBlockStop', { contentBlockIndex: 0 }),
          converseEvent('messageStop', { stopReason: 'tool_use' }),
          converseEvent('metadata', { usage: { inputTokens: 3, outputTokens: 2 } }),
        ])
      )!.toString()
    )
    assert.deepEqual(events.map((e) => e.event), ['message_start', 'content_block_start', 'content_block_delta', 'content_block_delta', 'content_block_stop', 'message_delta', 'message_stop'])
    assert.deepEqual(events[1].data.content_block, { type: 'text', text: '' })
    assert.equal(events[2].data.delta.text + events[3].data.delta.text, '{"city":"Paris"}')
    assert.equal(events[5].data.delta.stop_reason, 'end_turn')
  })

  test("converse-stream's reasoning as Anthropic thinking: text, signature and redacted deltas", ({ assert }) => {
    const decoder = new ConverseToAnthropicSse('m', 'x')
    const events = sseEvents(
      decoder.push(
        Buffer.concat([
          converseEvent('messageStart', { role: 'assistant' }),
          converseEvent('contentBlockDelta', { contentBlockIndex: 0, delta: { reasoningContent: { redactedContent: 'UkVE' } } }),
          converseEvent('contentBlockStop', { contentBlockIndex: 0 }),
          converseEvent('contentBlockDelta', { contentBlockIndex: 1, delta: { reasoningContent: { text: 'Hmm' } } }),
          converseEvent('contentBlockDelta', { contentBlockIndex: 1, delta: { reasoningContent: { signature: 'sig' } } }),
          converseEvent('contentBlockStop', { contentBlockIndex: 1 }),
          converseEvent('contentBlockDelta', { contentBlockIndex: 2, delta: { text: 'Hi' } }),
          converseEvent('messageStop', { stopReason: 'end_turn' }),
        ])
      )!.toString()
    )
    const blocks = events.filter((e) => e.event === 'content_block_start').map((e) => e.data.content_block)
    assert.deepEqual(blocks, [{ type: 'redacted_thinking', data: 'UkVE' }, { type: 'thinking', thinking: '', signature: '' }, { type: 'text', text: '' }])
    const deltas = events.filter((e) => e.event === 'content_block_delta').map((e) => [e.data.index, e.data.delta])
    assert.deepEqual(deltas, [[1, { type: 'thinking_delta', thinking: 'Hmm' }], [1, { type: 'signature_delta', signature: 'sig' }], [2, { type: 'text_delta', text: 'Hi' }]])
  })

  test('a key of `env`: the environment\'s Bedrock API key first, else the default chain (aws_credentials.ts); each part concealed', ({ assert }) => {
    assert.deepEqual(environmentAuth({ AWS_ACCESS_KEY_ID: 'AKIAENV', AWS_SECRET_ACCESS_KEY: 'envsecret', AWS_BEARER_TOKEN_BEDROCK: 'ABSKenv' }), { kind: 'bearer', token: 'ABSKenv' })
    assert.isNull(environmentAuth({ AWS_ACCESS_KEY_ID: 'AKIAENV', AWS_SECRET_ACCESS_KEY: 'envsecret' }))
    const bearer = environmentAuth({ AWS_BEARER_TOKEN_BEDROCK: 'ABSKenv' })
    assert.equal(parseBedrockKey(' env ', bearer), bearer)
    assert.deepEqual(parseBedrockKey('env', null), { kind: 'chain' })
    assert.deepEqual(parseBedrockKey('AKIA1:s', bearer), { kind: 'sigv4', credentials: { accessKeyId: 'AKIA1', secretAccessKey: 's' } })
    assert.deepEqual(bedrockKeySecrets('AKIA1:sec:tok'), ['AKIA1', 'sec', 'tok'])
  })
})
