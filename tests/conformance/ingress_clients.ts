import { parseSse } from '#tests/clients'

/**
 * One client per ingress wire format, as the conformance matrix drives it:
 * how to ask for a case (text, stream, tools, image, follow-up with a tool
 * result) and how to read the answer back into one neutral shape, with usage
 * in canonical terms (input includes cache reads/writes).
 */
export interface Usage {
  input: number
  output: number
  cacheRead: number
}

export interface Answer {
  text: string
  toolCalls: Array<{ id?: string; name: string; args: any }>
  usage: Usage | null
  /** The stream ended with the wire's error event */
  streamError: boolean
  /** The stream ended with the wire's proper terminal event */
  terminated: boolean
}

export interface Case {
  model: string
  stream: boolean
  prompt: string
  tools?: boolean
  image?: string
  /** The previous turn's tool calls (one, or several in parallel) and their results, to continue the conversation */
  toolResults?: Array<{ call: { id?: string; name: string; args: any }; result: string }>
}

export interface IngressClient {
  name: string
  request(c: Case): { path: string; body: Record<string, unknown> }
  auth(key: string): Record<string, string>
  read(bodyText: string, stream: boolean): Answer
  /** Does this JSON error body have the wire's error shape with this status? */
  isError(body: any, status: number): boolean
}

const schema = { type: 'object', properties: { location: { type: 'string' } }, required: ['location'] }
const empty = (): Answer => ({ text: '', toolCalls: [], usage: null, streamError: false, terminated: false })
const json = (text: string) => (text ? JSON.parse(text) : {})

export const chatClient: IngressClient = {
  name: 'chat',
  auth: (key) => ({ authorization: `Bearer ${key}` }),
  request(c) {
    const user: any = c.image
      ? { role: 'user', content: [{ type: 'text', text: c.prompt }, { type: 'image_url', image_url: { url: `data:image/png;base64,${c.image}` } }] }
      : { role: 'user', content: c.prompt }
    const messages: any[] = [user]
    if (c.toolResults) {
      const calls = c.toolResults.map(({ call }) => ({ id: call.id, type: 'function', function: { name: call.name, arguments: JSON.stringify(call.args) } }))
      messages.push({ role: 'assistant', content: null, tool_calls: calls })
      for (const { call, result } of c.toolResults) messages.push({ role: 'tool', tool_call_id: call.id, content: result })
    }
    const body: Record<string, unknown> = { model: c.model, messages, stream: c.stream }
    if (c.stream) body.stream_options = { include_usage: true }
    if (c.tools) body.tools = [{ type: 'function', function: { name: 'get_weather', parameters: schema } }]
    return { path: '/v1/chat/completions', body }
  },
  read(text, stream) {
    const answer = empty()
    const usageOf = (u: any): Usage => ({ input: u.prompt_tokens, output: u.completion_tokens, cacheRead: u.prompt_tokens_details?.cached_tokens ?? 0 })
    if (!stream) {
      const body = json(text)
      const message = body.choices[0].message
      answer.text = message.content ?? ''
      answer.toolCalls = (message.tool_calls ?? []).map((t: any) => ({ id: t.id, name: t.function.name, args: JSON.parse(t.function.arguments) }))
      answer.usage = body.usage ? usageOf(body.usage) : null
      answer.terminated = true
      return answer
    }
    const calls = new Map<number, { id?: string; name: string; args: string }>()
    for (const { data } of parseSse(text)) {
      if (data === '[DONE]') answer.terminated = true
      else if (data.error) answer.streamError = true
      else {
        const delta = data.choices?.[0]?.delta
        answer.text += delta?.content ?? ''
        for (const t of delta?.tool_calls ?? []) {
          const call = calls.get(t.index) ?? { id: t.id, name: t.function?.name ?? '', args: '' }
          call.args += t.function?.arguments ?? ''
          calls.set(t.index, call)
        }
        if (data.usage) answer.usage = usageOf(data.usage)
      }
    }
    answer.toolCalls = [...calls.values()].map((c) => ({ ...c, args: JSON.parse(c.args || '{}') }))
    return answer
  },
  isError: (body, status) => typeof body?.error?.message === 'string' && 'code' in body.error && status >= 400,
}

export const messagesClient: IngressClient = {
  name: 'messages',
  auth: (key) => ({ 'x-api-key': key, 'anthropic-version': '2023-06-01' }),
  request(c) {
    const content: any[] = [{ type: 'text', text: c.prompt }]
    if (c.image) content.push({ type: 'image', source: { type: 'base64', media_type: 'image/png', data: c.image } })
    const messages: any[] = [{ role: 'user', content }]
    if (c.toolResults) {
      messages.push({ role: 'assistant', content: c.toolResults.map(({ call }) => ({ type: 'tool_use', id: call.id, name: call.name, input: call.args })) })
      messages.push({ role: 'user', content: c.toolResults.map(({ call, result }) => ({ type: 'tool_result', tool_use_id: call.id, content: result })) })
    }
    const body: Record<string, unknown> = { model: c.model, max_tokens: 256, messages, stream: c.stream }
    if (c.tools) body.tools = [{ name: 'get_weather', input_schema: schema }]
    return { path: '/v1/messages', body }
  },
  read(text, stream) {
    const answer = empty()
    const usageOf = (u: any): Usage => ({
      input: u.input_tokens + (u.cache_read_input_tokens ?? 0) + (u.cache_creation_input_tokens ?? 0),
      output: u.output_tokens,
      cacheRead: u.cache_read_input_tokens ?? 0,
    })
    if (!stream) {
      const body = json(text)
      for (const block of body.content) {
        if (block.type === 'text') answer.text += block.text
        if (block.type === 'tool_use') answer.toolCalls.push({ id: block.id, name: block.name, args: block.input })
      }
      answer.usage = usageOf(body.usage)
      answer.terminated = true
      return answer
    }
    const blocks = new Map<number, any>()
    // Anthropic's stream has one block open at a time: a piece outside its block's start and stop breaks the wire.
    const open = new Set<number>()
    const mustBeOpen = (index: number, event: string) => {
      if (!open.has(index)) throw new Error(`${event} for block ${index}, which is not open`)
    }
    let start: any = null
    for (const { event, data } of parseSse(text)) {
      if (event === 'message_start') start = data.message.usage
      else if (event === 'content_block_start') {
        if (open.size > 0) throw new Error(`content_block_start ${data.index} while block ${[...open]} is open`)
        open.add(data.index)
        blocks.set(data.index, { ...data.content_block, json: '' })
      } else if (event === 'content_block_stop') {
        mustBeOpen(data.index, event)
        open.delete(data.index)
      } else if (event === 'content_block_delta') {
        mustBeOpen(data.index, event)
        const block = blocks.get(data.index)
        if (data.delta.type === 'text_delta') answer.text += data.delta.text
        if (data.delta.type === 'input_json_delta') block.json += data.delta.partial_json
      } else if (event === 'message_delta') answer.usage = usageOf({ ...start, ...data.usage })
      else if (event === 'message_stop') answer.terminated = true
      else if (event === 'error') answer.streamError = true
    }
    for (const block of blocks.values()) {
      if (block.type === 'tool_use') answer.toolCalls.push({ id: block.id, name: block.name, args: JSON.parse(block.json || '{}') })
    }
    return answer
  },
  isError: (body, status) => body?.type === 'error' && typeof body.error?.type === 'string' && status >= 400,
}

export const responsesClient: IngressClient = {
  name: 'responses',
  auth: (key) => ({ authorization: `Bearer ${key}` }),
  request(c) {
    const content: any[] = [{ type: 'input_text', text: c.prompt }]
    if (c.image) content.push({ type: 'input_image', image_url: `data:image/png;base64,${c.image}` })
    const input: any[] = [{ type: 'message', role: 'user', content }]
    if (c.toolResults) {
      for (const { call } of c.toolResults) input.push({ type: 'function_call', call_id: call.id, name: call.name, arguments: JSON.stringify(call.args) })
      for (const { call, result } of c.toolResults) input.push({ type: 'function_call_output', call_id: call.id, output: result })
    }
    const body: Record<string, unknown> = { model: c.model, input, stream: c.stream, store: false }
    if (c.tools) body.tools = [{ type: 'function', name: 'get_weather', parameters: schema }]
    return { path: '/v1/responses', body }
  },
  read(text, stream) {
    const answer = empty()
    const fromResponse = (response: any) => {
      for (const item of response.output ?? []) {
        if (item.type === 'message') answer.text += item.content.map((p: any) => p.text ?? '').join('')
        if (item.type === 'function_call') answer.toolCalls.push({ id: item.call_id, name: item.name, args: JSON.parse(item.arguments || '{}') })
      }
      const u = response.usage
      answer.usage = u ? { input: u.input_tokens, output: u.output_tokens, cacheRead: u.input_tokens_details?.cached_tokens ?? 0 } : null
    }
    if (!stream) {
      fromResponse(json(text))
      answer.terminated = true
      return answer
    }
    let streamed = ''
    const done = new Set<number>()
    for (const { event, data } of parseSse(text)) {
      if (event?.endsWith('.delta') && done.has(data.output_index)) throw new Error(`${event} for output ${data.output_index} after its item was done`)
      if (event === 'response.output_item.done') done.add(data.output_index)
      if (event === 'response.output_text.delta') streamed += data.delta
      if (event === 'response.completed') {
        fromResponse(data.response)
        answer.terminated = true
      }
      if (event === 'response.failed' || event === 'error') answer.streamError = true
    }
    if (!answer.terminated) answer.text = streamed
    return answer
  },
  isError: (body, status) => typeof body?.error?.message === 'string' && status >= 400,
}

export const geminiClient: IngressClient = {
  name: 'gemini',
  auth: (key) => ({ 'x-goog-api-key': key }),
  request(c) {
    const parts: any[] = [{ text: c.prompt }]
    if (c.image) parts.push({ inlineData: { mimeType: 'image/png', data: c.image } })
    const contents: any[] = [{ role: 'user', parts }]
    if (c.toolResults) {
      const id = (call: { id?: string }) => (call.id ? { id: call.id } : {})
      contents.push({ role: 'model', parts: c.toolResults.map(({ call }) => ({ functionCall: { ...id(call), name: call.name, args: call.args } })) })
      contents.push({ role: 'user', parts: c.toolResults.map(({ call, result }) => ({ functionResponse: { ...id(call), name: call.name, response: { result } } })) })
    }
    const body: Record<string, unknown> = { contents }
    if (c.tools) body.tools = [{ functionDeclarations: [{ name: 'get_weather', parametersJsonSchema: schema }] }]
    const method = c.stream ? 'streamGenerateContent?alt=sse' : 'generateContent'
    return { path: `/v1beta/models/${c.model}:${method}`, body }
  },
  read(text, stream) {
    const answer = empty()
    const chunks = stream ? parseSse(text).map((e) => e.data) : [json(text)]
    for (const chunk of chunks) {
      if (chunk.error) {
        answer.streamError = true
        continue
      }
      const candidate = chunk.candidates?.[0]
      for (const part of candidate?.content?.parts ?? []) {
        if (typeof part.text === 'string' && !part.thought) answer.text += part.text
        if (part.functionCall) answer.toolCalls.push({ id: part.functionCall.id, name: part.functionCall.name, args: part.functionCall.args })
      }
      if (candidate?.finishReason) answer.terminated = true
      const u = chunk.usageMetadata
      if (u && candidate?.finishReason) {
        answer.usage = { input: u.promptTokenCount, output: (u.candidatesTokenCount ?? 0) + (u.thoughtsTokenCount ?? 0), cacheRead: u.cachedContentTokenCount ?? 0 }
      }
    }
    return answer
  },
  isError: (body, status) => body?.error?.code === status && typeof body.error.status === 'string',
}

export const INGRESS_CLIENTS = [chatClient, messagesClient, responsesClient, geminiClient]
