import { test } from '@japa/runner'
import type { DialectName } from '#gateway/dialects/canonical'
import { dialectOf } from '#gateway/dialects/registry'
import { GatewayError } from '#exceptions/gateway_error'

/**
 * Attachments other than images (PDF, plain text, audio, a URL document, an
 * uploaded file's id) written by each client format, translated to every
 * other format's upstream body: each reaches the upstream in that format's
 * own form, or the translation refuses it with a 400 that says what cannot be
 * carried. Never dropped, never an image of type application/pdf.
 */
const PDF = 'JVBERi0xLjQKJcfsj6IK'
const WAV = 'UklGRiQAAABXQVZFZm10IBAAAAABAAEA'
const TXT = 'Meeting notes: ship on Friday.'
const TXT64 = Buffer.from(TXT).toString('base64')
const URL_PDF = 'https://example.com/paper.pdf'
const FILE_ID = 'file-abc123'

const DIALECTS: DialectName[] = ['openai_chat', 'openai_responses', 'anthropic_messages', 'gemini']

/** A client body in each format, with one user turn: a question and the attachment part. */
function clientBody(dialect: DialectName, attachment: unknown): Record<string, unknown> {
  switch (dialect) {
    case 'openai_chat':
      return { model: 'm', messages: [{ role: 'user', content: [{ type: 'text', text: 'Summarise' }, attachment] }] }
    case 'openai_responses':
      return { model: 'm', input: [{ type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Summarise' }, attachment] }] }
    case 'anthropic_messages':
      return { model: 'm', max_tokens: 100, messages: [{ role: 'user', content: [{ type: 'text', text: 'Summarise' }, attachment] }] }
    case 'gemini':
      return { contents: [{ role: 'user', parts: [{ text: 'Summarise' }, attachment] }] }
  }
}

/** Every content part of the user turns of an upstream body, in its own format. */
function userParts(dialect: DialectName, body: any): any[] {
  const list = (content: unknown) => (Array.isArray(content) ? content : [{ type: 'text', text: content }])
  switch (dialect) {
    case 'openai_chat':
      return body.messages.filter((m: any) => m.role === 'user').flatMap((m: any) => list(m.content))
    case 'openai_responses':
      return body.input.filter((i: any) => i.type === 'message' && i.role === 'user').flatMap((i: any) => list(i.content))
    case 'anthropic_messages':
      return body.messages.filter((m: any) => m.role === 'user').flatMap((m: any) => list(m.content))
    case 'gemini':
      return body.contents.filter((c: any) => c.role === 'user').flatMap((c: any) => c.parts)
  }
}

function translate(from: DialectName, to: DialectName, body: Record<string, unknown>) {
  return dialectOf(to).encodeRequest(dialectOf(from).decodeRequest(body), 'upstream-model') as any
}

interface Kind {
  name: string
  /** The attachment as each client format that can say it writes it */
  clients: Partial<Record<DialectName, unknown>>
  /** What each upstream format must receive: a part (subset), or the 400's message pattern */
  upstream: Record<DialectName, Record<string, unknown> | RegExp>
}

const KINDS: Kind[] = [
  {
    name: 'base64 PDF',
    clients: {
      openai_chat: { type: 'file', file: { filename: 'report.pdf', file_data: `data:application/pdf;base64,${PDF}` } },
      openai_responses: { type: 'input_file', filename: 'report.pdf', file_data: `data:application/pdf;base64,${PDF}` },
      anthropic_messages: { type: 'document', source: { type: 'base64', media_type: 'application/pdf', data: PDF } },
      gemini: { inlineData: { mimeType: 'application/pdf', data: PDF } },
    },
    upstream: {
      openai_chat: { type: 'file', file: { file_data: `data:application/pdf;base64,${PDF}` } },
      openai_responses: { type: 'input_file', file_data: `data:application/pdf;base64,${PDF}` },
      anthropic_messages: { type: 'document', source: { type: 'base64', media_type: 'application/pdf', data: PDF } },
      gemini: { inlineData: { mimeType: 'application/pdf', data: PDF } },
    },
  },
  {
    name: 'wav audio',
    clients: {
      openai_chat: { type: 'input_audio', input_audio: { data: WAV, format: 'wav' } },
      gemini: { inlineData: { mimeType: 'audio/wav', data: WAV } },
    },
    upstream: {
      openai_chat: { type: 'input_audio', input_audio: { data: WAV, format: 'wav' } },
      openai_responses: /audio\/wav.*OpenAI Responses.*not audio/,
      anthropic_messages: /audio\/wav.*Anthropic Messages.*not audio/,
      gemini: { inlineData: { mimeType: 'audio/wav', data: WAV } },
    },
  },
  {
    name: 'plain-text document',
    clients: {
      openai_chat: { type: 'file', file: { filename: 'notes.txt', file_data: `data:text/plain;base64,${TXT64}` } },
      anthropic_messages: { type: 'document', source: { type: 'text', media_type: 'text/plain', data: TXT } },
      gemini: { inlineData: { mimeType: 'text/plain', data: TXT64 } },
    },
    upstream: {
      openai_chat: { type: 'text', text: TXT },
      openai_responses: { type: 'input_text', text: TXT },
      anthropic_messages: { type: 'document', source: { type: 'text', media_type: 'text/plain', data: TXT } },
      gemini: { inlineData: { mimeType: 'text/plain', data: TXT64 } },
    },
  },
  {
    name: 'PDF by URL',
    clients: {
      openai_responses: { type: 'input_file', file_url: URL_PDF },
      anthropic_messages: { type: 'document', source: { type: 'url', url: URL_PDF } },
      gemini: { fileData: { mimeType: 'application/pdf', fileUri: URL_PDF } },
    },
    upstream: {
      openai_chat: /application\/pdf.*given by URL.*OpenAI chat completions.*not a URL/,
      openai_responses: { type: 'input_file', file_url: URL_PDF },
      anthropic_messages: { type: 'document', source: { type: 'url', url: URL_PDF } },
      gemini: { fileData: { mimeType: 'application/pdf', fileUri: URL_PDF } },
    },
  },
  {
    name: 'OpenAI file_id',
    clients: {
      openai_chat: { type: 'file', file: { file_id: FILE_ID } },
      openai_responses: { type: 'input_file', file_id: FILE_ID },
    },
    upstream: {
      openai_chat: { type: 'file', file: { file_id: FILE_ID } },
      openai_responses: { type: 'input_file', file_id: FILE_ID },
      anthropic_messages: /uploaded to OpenAI \(file id file-abc123\).*Anthropic Messages/,
      gemini: /uploaded to OpenAI \(file id file-abc123\).*Google Gemini/,
    },
  },
]

test.group('Attachments translated between wire formats', () => {
  for (const kind of KINDS) {
    for (const [from, attachment] of Object.entries(kind.clients) as Array<[DialectName, unknown]>) {
      for (const to of DIALECTS.filter((d) => d !== from)) {
        const expected = kind.upstream[to]
        test(`${kind.name}: ${from} client -> ${to} upstream`, ({ assert }) => {
          const body = clientBody(from, attachment)
          if (expected instanceof RegExp) {
            let error: unknown
            try {
              translate(from, to, body)
            } catch (e) {
              error = e
            }
            assert.instanceOf(error, GatewayError, 'refused, not dropped')
            const refusal = error as GatewayError
            assert.equal(refusal.status, 400)
            assert.equal(refusal.type, 'invalid_request_error')
            assert.equal(refusal.code, 'unsupported_attachment')
            assert.match(refusal.message, expected)
            return
          }
          const sent = translate(from, to, body)
          const parts = userParts(to, sent)
          assert.containSubset(parts, [expected])
          // The question is still there, and nothing became an image.
          assert.include(JSON.stringify(parts), 'Summarise')
          assert.notMatch(JSON.stringify(sent), /image_url|input_image|"type":"image"/)
          // The upstream body reads back (a released request's prompt is counted from it).
          const again = dialectOf(to).decodeRequest(sent).messages.flatMap((m) => m.content)
          assert.isTrue(again.some((p) => p.type === 'file' || (p.type === 'text' && p.text === TXT)), JSON.stringify(again))
        })
      }
    }
  }

  test('OpenAI formats get a file name with file_data (Gemini sends none)', ({ assert }) => {
    const body = clientBody('gemini', { inlineData: { mimeType: 'application/pdf', data: PDF } })
    assert.containSubset(userParts('openai_chat', translate('gemini', 'openai_chat', body)), [{ file: { filename: 'file.pdf' } }])
    assert.containSubset(userParts('openai_responses', translate('gemini', 'openai_responses', body)), [{ filename: 'file.pdf' }])
    const named = clientBody('openai_responses', { type: 'input_file', filename: 'report.pdf', file_data: `data:application/pdf;base64,${PDF}` })
    assert.containSubset(userParts('openai_chat', translate('openai_responses', 'openai_chat', named)), [{ file: { filename: 'report.pdf' } }])
    assert.containSubset(userParts('anthropic_messages', translate('openai_responses', 'anthropic_messages', named)), [{ type: 'document', title: 'report.pdf' }])
  })

  test('mp3 audio from chat reaches Gemini as audio/mp3 and chat as format mp3', ({ assert }) => {
    const body = clientBody('openai_chat', { type: 'input_audio', input_audio: { data: WAV, format: 'mp3' } })
    assert.containSubset(userParts('gemini', translate('openai_chat', 'gemini', body)), [{ inlineData: { mimeType: 'audio/mp3', data: WAV } }])
    const back = clientBody('gemini', { inlineData: { mimeType: 'audio/mpeg', data: WAV } })
    assert.containSubset(userParts('openai_chat', translate('gemini', 'openai_chat', back)), [{ type: 'input_audio', input_audio: { format: 'mp3' } }])
    const flac = clientBody('gemini', { inlineData: { mimeType: 'audio/flac', data: WAV } })
    assert.throws(() => translate('gemini', 'openai_chat', flac), /audio\/flac.*wav or mp3/)
  })

  test('an Anthropic Files API document is refused by the other formats', ({ assert }) => {
    const body = clientBody('anthropic_messages', { type: 'document', source: { type: 'file', file_id: 'file_011' } })
    for (const to of ['openai_chat', 'openai_responses', 'gemini'] as const) {
      assert.throws(() => translate('anthropic_messages', to, body), /uploaded to Anthropic \(file id file_011\)/)
    }
  })

  test('a tool result holding a document: the document reaches each format beside the result', ({ assert }) => {
    const body = {
      model: 'm',
      max_tokens: 100,
      messages: [
        { role: 'user', content: 'Read the report' },
        { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_1', name: 'read_file', input: { path: 'report.pdf' } }] },
        {
          role: 'user',
          content: [
            {
              type: 'tool_result',
              tool_use_id: 'toolu_1',
              content: [
                { type: 'text', text: 'PDF read' },
                { type: 'document', source: { type: 'base64', media_type: 'application/pdf', data: PDF } },
              ],
            },
          ],
        },
      ],
      tools: [{ name: 'read_file', input_schema: { type: 'object', properties: { path: { type: 'string' } } } }],
    }
    // Chat: a tool message is text only; the PDF follows the tool messages in a user message.
    const chat = translate('anthropic_messages', 'openai_chat', body)
    const roles = chat.messages.map((m: any) => m.role)
    assert.deepEqual(roles, ['user', 'assistant', 'tool', 'user'])
    assert.equal(chat.messages[2].content, 'PDF read')
    assert.containSubset(chat.messages[3].content, [{ type: 'file', file: { file_data: `data:application/pdf;base64,${PDF}` } }])
    // Responses: the output is a list of input parts.
    const responses = translate('anthropic_messages', 'openai_responses', body)
    const output = responses.input.find((i: any) => i.type === 'function_call_output').output
    assert.containSubset(output, [{ type: 'input_text', text: 'PDF read' }, { type: 'input_file', file_data: `data:application/pdf;base64,${PDF}` }])
    // Gemini: the functionResponse, then the document, in the same turn.
    const gemini = translate('anthropic_messages', 'gemini', body)
    const turn = gemini.contents.at(-1)
    assert.equal(turn.role, 'user')
    assert.deepEqual(turn.parts[0].functionResponse.response, { result: 'PDF read' })
    assert.deepEqual(turn.parts[1], { inlineData: { mimeType: 'application/pdf', data: PDF } })
    // And a chat client's tool result carried back to Anthropic keeps a document block (re-read from the chat body).
    const back = translate('openai_chat', 'anthropic_messages', chat)
    assert.containSubset(back.messages.at(-1).content, [{ type: 'tool_result', tool_use_id: 'toolu_1' }, { type: 'document' }])
  })

  test('a text document counts toward the prompt estimate', async ({ assert }) => {
    const { countCanonicalPrompt } = await import('#gateway/dialects/prompt_tokens')
    const long = 'word '.repeat(400)
    const withDoc = dialectOf('anthropic_messages').decodeRequest(
      clientBody('anthropic_messages', { type: 'document', source: { type: 'text', media_type: 'text/plain', data: long } })
    )
    const without = dialectOf('anthropic_messages').decodeRequest(clientBody('anthropic_messages', { type: 'text', text: '' }))
    assert.isAbove((await countCanonicalPrompt(withDoc)) - (await countCanonicalPrompt(without)), 300)
  })
})
