import { test } from '@japa/runner'
import { authorization, canonicalRequest, sha256Hex, signRequest } from '#gateway/providers/bedrock/sigv4'
import { EventStreamDecoder } from '#gateway/providers/bedrock/event_stream'
import { BedrockToAnthropicSse } from '#gateway/providers/bedrock/bedrock_stream'
import { bedrockAdapter, bedrockStatus } from '#gateway/providers/bedrock/bedrock_adapter'
import { bedrockRegion, parseBedrockKey } from '#gateway/providers/bedrock/bedrock_settings'
import { normaliseBaseUrl } from '#gateway/providers/base_url'
import { frame } from '#tests/fixtures/mock_bedrock'
import type { ChannelInfo } from '#gateway/types'
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
})
