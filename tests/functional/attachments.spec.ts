import { test } from '@japa/runner'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { post, resetDatabase, seedChannel, seedUser, startMock, usageRows, type SeededUser } from '#tests/helpers'

/**
 * Attachments other than images through the real gateway, translated: the
 * body the upstream received carries them in its own form (an audit with the
 * real SDKs found them dropped, or sent as images of type application/pdf),
 * and what the upstream's format cannot carry is the client's 400 in the
 * client's format, before any upstream is called.
 */
const PDF = 'JVBERi0xLjQKJcfsj6IK'
const WAV = 'UklGRiQAAABXQVZFZm10IBAAAAABAAEA'
const TXT = 'Meeting notes: ship on Friday.'

const chatAuth = (user: SeededUser) => ({ authorization: `Bearer ${user.key}` })
const anthropicAuth = (user: SeededUser) => ({ 'x-api-key': user.key, 'anthropic-version': '2023-06-01' })
const googleAuth = (user: SeededUser) => ({ 'x-goog-api-key': user.key })

test.group('Attachments on translated routes', (group) => {
  let mock: MockUpstream
  let user: SeededUser

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'att-chat', provider: 'custom', baseUrl: mock.url, models: ['att-chat-*'] })
    await seedChannel({ name: 'att-claude', provider: 'anthropic', baseUrl: mock.url, models: ['att-claude-*'] })
    await seedChannel({ name: 'att-gemini', provider: 'google', baseUrl: `${mock.origin}/v1beta`, models: ['att-gemini-*'] })
    user = await seedUser()
    return () => mock.stop()
  })

  /** The upstream body of the last request, parsed. */
  const sent = () => JSON.parse(mock.lastRequest()!.body)

  test('chat client: a PDF file part reaches Anthropic as a document block, wav audio reaches Gemini', async ({ assert }) => {
    const pdf = { type: 'file', file: { filename: 'report.pdf', file_data: `data:application/pdf;base64,${PDF}` } }
    const messages = [{ role: 'user', content: [{ type: 'text', text: 'Summarise' }, pdf] }]
    let response = await post('/v1/chat/completions', { model: 'att-claude-x', messages }, chatAuth(user))
    assert.equal(response.status, 200, await response.text())
    assert.match(mock.lastRequest()!.path, /\/messages$/)
    assert.deepEqual(sent().messages[0].content, [
      { type: 'text', text: 'Summarise' },
      { type: 'document', source: { type: 'base64', media_type: 'application/pdf', data: PDF }, title: 'report.pdf' },
    ])

    const audio = { type: 'input_audio', input_audio: { data: WAV, format: 'wav' } }
    response = await post('/v1/chat/completions', { model: 'att-gemini-x', messages: [{ role: 'user', content: [{ type: 'text', text: 'Transcribe' }, audio] }] }, chatAuth(user))
    assert.equal(response.status, 200, await response.text())
    assert.deepEqual(sent().contents[0].parts, [{ text: 'Transcribe' }, { inlineData: { mimeType: 'audio/wav', data: WAV } }])
  })

  test('Anthropic client: PDF and text documents, and a document in a tool result, reach a chat upstream', async ({ assert }) => {
    const body = {
      model: 'att-chat-x',
      max_tokens: 100,
      messages: [
        {
          role: 'user',
          content: [
            { type: 'document', source: { type: 'base64', media_type: 'application/pdf', data: PDF } },
            { type: 'document', source: { type: 'text', media_type: 'text/plain', data: TXT } },
            { type: 'text', text: 'Compare them, then read the appendix' },
          ],
        },
        { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_1', name: 'read', input: { path: 'appendix.pdf' } }] },
        {
          role: 'user',
          content: [
            {
              type: 'tool_result',
              tool_use_id: 'toolu_1',
              content: [{ type: 'text', text: 'appendix read' }, { type: 'document', source: { type: 'base64', media_type: 'application/pdf', data: PDF } }],
            },
          ],
        },
      ],
      tools: [{ name: 'read', input_schema: { type: 'object', properties: { path: { type: 'string' } } } }],
    }
    for (const stream of [false, true]) {
      const response = await post('/v1/messages', { ...body, stream }, anthropicAuth(user))
      assert.equal(response.status, 200, await response.text())
      const { messages } = sent()
      assert.deepEqual(messages[0], {
        role: 'user',
        content: [
          { type: 'file', file: { filename: 'file.pdf', file_data: `data:application/pdf;base64,${PDF}` } },
          { type: 'text', text: TXT },
          { type: 'text', text: 'Compare them, then read the appendix' },
        ],
      })
      // The tool message answers its call; the result's PDF follows in a user message.
      assert.deepEqual(messages.slice(2).map((m: any) => m.role), ['tool', 'user'])
      assert.equal(messages[2].content, 'appendix read')
      assert.deepEqual(messages[3].content, [{ type: 'file', file: { filename: 'file.pdf', file_data: `data:application/pdf;base64,${PDF}` } }])
    }
  })

  test('Responses client: input_file reaches Gemini as inlineData, a file_url reaches Anthropic as a URL document', async ({ assert }) => {
    const input = (file: Record<string, unknown>) => [
      { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Summarise' }, { type: 'input_file', ...file }] },
    ]
    let response = await post(
      '/v1/responses',
      { model: 'att-gemini-x', input: input({ filename: 'report.pdf', file_data: `data:application/pdf;base64,${PDF}` }), store: false },
      chatAuth(user)
    )
    assert.equal(response.status, 200, await response.text())
    assert.deepEqual(sent().contents[0].parts, [{ text: 'Summarise' }, { inlineData: { mimeType: 'application/pdf', data: PDF } }])

    response = await post('/v1/responses', { model: 'att-claude-x', input: input({ file_url: 'https://example.com/paper.pdf' }), store: false }, chatAuth(user))
    assert.equal(response.status, 200, await response.text())
    assert.deepEqual(sent().messages[0].content[1], { type: 'document', source: { type: 'url', url: 'https://example.com/paper.pdf' } })
  })

  test('Gemini client: inlineData application/pdf is a document for Anthropic and a file for chat, never an image', async ({ assert }) => {
    const contents = [{ role: 'user', parts: [{ text: 'Summarise' }, { inlineData: { mimeType: 'application/pdf', data: PDF } }] }]
    let response = await post('/v1beta/models/att-claude-x:generateContent', { contents }, googleAuth(user))
    assert.equal(response.status, 200, await response.text())
    assert.deepEqual(sent().messages[0].content[1], { type: 'document', source: { type: 'base64', media_type: 'application/pdf', data: PDF } })

    response = await post('/v1beta/models/att-chat-x:streamGenerateContent?alt=sse', { contents }, googleAuth(user))
    assert.equal(response.status, 200, await response.text())
    const parts = sent().messages[0].content
    assert.deepEqual(parts[1], { type: 'file', file: { filename: 'file.pdf', file_data: `data:application/pdf;base64,${PDF}` } })
    assert.notInclude(mock.lastRequest()!.body, 'image_url')

    const audio = [{ role: 'user', parts: [{ text: 'Transcribe' }, { inlineData: { mimeType: 'audio/wav', data: WAV } }] }]
    response = await post('/v1beta/models/att-chat-x:generateContent', { contents: audio }, googleAuth(user))
    assert.equal(response.status, 200, await response.text())
    assert.deepEqual(sent().messages[0].content[1], { type: 'input_audio', input_audio: { data: WAV, format: 'wav' } })
  })

  test('what the upstream format cannot carry is a 400 in the client format, and the upstream is not called', async ({ assert }) => {
    const cases: Array<{ label: string; path: string; body: unknown; headers: Record<string, string>; check: (b: any) => void }> = [
      {
        label: 'chat audio -> Anthropic',
        path: '/v1/chat/completions',
        body: { model: 'att-claude-x', messages: [{ role: 'user', content: [{ type: 'input_audio', input_audio: { data: WAV, format: 'wav' } }] }] },
        headers: chatAuth(user),
        check: (b) => {
          assert.equal(b.error.type, 'invalid_request_error')
          assert.equal(b.error.code, 'unsupported_attachment')
          assert.match(b.error.message, /audio\/wav.*Anthropic/)
        },
      },
      {
        label: 'chat audio -> Anthropic, streamed',
        path: '/v1/chat/completions',
        body: { model: 'att-claude-x', stream: true, messages: [{ role: 'user', content: [{ type: 'input_audio', input_audio: { data: WAV, format: 'mp3' } }] }] },
        headers: chatAuth(user),
        check: (b) => assert.equal(b.error.code, 'unsupported_attachment'),
      },
      {
        label: 'Gemini audio -> Anthropic',
        path: '/v1beta/models/att-claude-x:generateContent',
        body: { contents: [{ role: 'user', parts: [{ text: 'Transcribe' }, { inlineData: { mimeType: 'audio/wav', data: WAV } }] }] },
        headers: googleAuth(user),
        check: (b) => {
          assert.equal(b.error.code, 400)
          assert.equal(b.error.status, 'INVALID_ARGUMENT')
          assert.match(b.error.message, /audio\/wav.*Anthropic/)
        },
      },
      {
        label: 'Anthropic URL document -> chat',
        path: '/v1/messages',
        body: { model: 'att-chat-x', max_tokens: 10, messages: [{ role: 'user', content: [{ type: 'document', source: { type: 'url', url: 'https://example.com/a.pdf' } }] }] },
        headers: anthropicAuth(user),
        check: (b) => {
          assert.equal(b.type, 'error')
          assert.equal(b.error.type, 'invalid_request_error')
          assert.match(b.error.message, /application\/pdf.*by URL.*OpenAI chat/)
        },
      },
      {
        label: 'Responses OpenAI file_id -> Gemini',
        path: '/v1/responses',
        body: { model: 'att-gemini-x', input: [{ type: 'message', role: 'user', content: [{ type: 'input_file', file_id: 'file-abc123' }] }] },
        headers: chatAuth(user),
        check: (b) => {
          assert.equal(b.error.type, 'invalid_request_error')
          assert.match(b.error.message, /uploaded to OpenAI \(file id file-abc123\).*Gemini/)
        },
      },
    ]
    for (const c of cases) {
      const before = mock.requests.length
      const response = await post(c.path, c.body, c.headers)
      const text = await response.text()
      assert.equal(response.status, 400, `${c.label}: ${text}`)
      c.check(JSON.parse(text))
      assert.equal(mock.requests.length, before, `${c.label}: no upstream call`)
    }
  })
})

test.group('Attachments on a route of two formats', (group) => {
  let mock: MockUpstream
  let user: SeededUser

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    // Each model: the higher-priority channel's format cannot carry the attachment, the other's can.
    await seedChannel({ name: 'mix-chat', provider: 'custom', baseUrl: mock.url, models: ['mix-doc-*', 'mix-audio-*'], priority: 10 })
    await seedChannel({ name: 'mix-claude', provider: 'anthropic', baseUrl: mock.url, models: ['mix-doc-*', 'mix-audio-*'], priority: 0 })
    await seedChannel({ name: 'mix-gemini', provider: 'google', baseUrl: `${mock.origin}/v1beta`, models: ['mix-file-*'], priority: 10 })
    await seedChannel({ name: 'mix-openai', provider: 'custom', baseUrl: mock.url, models: ['mix-file-*'], priority: 0 })
    user = await seedUser()
    return () => mock.stop()
  })

  test('a candidate whose format cannot carry the attachment is passed over for one that can', async ({ assert }) => {
    // A PDF by URL: no chat form; Anthropic takes it as is. The gateway answered 400 unsupported_attachment.
    const document = { type: 'document', source: { type: 'url', url: 'https://example.com/a.pdf' } }
    let before = mock.requests.length
    let response = await post(
      '/v1/messages',
      { model: 'mix-doc-x', max_tokens: 10, messages: [{ role: 'user', content: [{ type: 'text', text: 'Summarise' }, document] }] },
      anthropicAuth(user)
    )
    assert.equal(response.status, 200, await response.text())
    assert.equal(mock.requests.length, before + 1, 'one upstream call: the chat channel is not tried')
    assert.match(mock.lastRequest()!.path, /\/messages$/)
    assert.deepEqual(JSON.parse(mock.lastRequest()!.body).messages[0].content[1], document)

    // A chat file part with an OpenAI file id: Gemini cannot read it, the chat channel gets it untouched.
    const file = { type: 'file', file: { file_id: 'file-abc123' } }
    before = mock.requests.length
    response = await post('/v1/chat/completions', { model: 'mix-file-x', messages: [{ role: 'user', content: [{ type: 'text', text: 'Summarise' }, file] }] }, chatAuth(user))
    assert.equal(response.status, 200, await response.text())
    assert.equal(mock.requests.length, before + 1)
    assert.match(mock.lastRequest()!.path, /\/chat\/completions$/)
    assert.deepEqual(JSON.parse(mock.lastRequest()!.body).messages[0].content[1], file)

    // Without an attachment the route is the usual one: the higher-priority channel.
    response = await post('/v1/chat/completions', { model: 'mix-file-x', messages: [{ role: 'user', content: 'hi' }] }, chatAuth(user))
    assert.equal(response.status, 200, await response.text())
    assert.match(mock.lastRequest()!.path, /:generateContent$/)
  })

  test('no candidate can carry it: the 400 of the first, in the client format; nothing is called; metered as a refusal', async ({ assert }) => {
    // ogg audio: chat takes wav/mp3 only, Anthropic no audio at all.
    const contents = [{ role: 'user', parts: [{ text: 'Transcribe' }, { inlineData: { mimeType: 'audio/ogg', data: WAV } }] }]
    const before = mock.requests.length
    const response = await post('/v1beta/models/mix-audio-x:generateContent', { contents }, googleAuth(user))
    const body = (await response.json()) as any
    assert.equal(response.status, 400)
    assert.include(body.error, { code: 400, status: 'INVALID_ARGUMENT' })
    assert.match(body.error.message, /audio\/ogg.*OpenAI chat completions/)
    assert.equal(mock.requests.length, before)
    const rows = await usageRows(user.userId)
    assert.deepEqual(rows.map((r) => [r.status, r.error_code, r.channel_id]).at(-1), [400, 'unsupported_attachment', null])
  })
})
