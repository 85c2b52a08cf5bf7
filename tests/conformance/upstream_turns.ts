import type { RecordedRequest } from '#tests/fixtures/mock_upstream/server'

/**
 * The tool calls and tool results an upstream received, in the order it got
 * them, whatever its dialect: so a test can check that each result went back
 * paired with its own call (same id, the call's arguments), after the
 * gateway translated the conversation.
 */
export interface UpstreamTurns {
  calls: Array<{ id?: string; name: string; args: any }>
  /** Each result's text as the upstream got it (Gemini: the response object as JSON) */
  results: Array<{ id?: string; text: string }>
}

const list = (value: unknown): any[] => (Array.isArray(value) ? value : [])
const textOf = (content: unknown): string =>
  typeof content === 'string' ? content : list(content).map((p) => p?.text ?? '').join('')

export function upstreamTurns(request: RecordedRequest): UpstreamTurns {
  const body = JSON.parse(request.body)
  const turns: UpstreamTurns = { calls: [], results: [] }
  if (request.path.endsWith('/chat/completions')) {
    for (const message of list(body.messages)) {
      for (const c of list(message.tool_calls)) turns.calls.push({ id: c.id, name: c.function.name, args: JSON.parse(c.function.arguments) })
      if (message.role === 'tool') turns.results.push({ id: message.tool_call_id, text: textOf(message.content) })
    }
  } else if (request.path.endsWith('/messages')) {
    for (const block of list(body.messages).flatMap((m) => list(m.content))) {
      if (block.type === 'tool_use') turns.calls.push({ id: block.id, name: block.name, args: block.input })
      if (block.type === 'tool_result') turns.results.push({ id: block.tool_use_id, text: textOf(block.content) })
    }
  } else if (request.path.endsWith('/responses')) {
    for (const item of list(body.input)) {
      if (item.type === 'function_call') turns.calls.push({ id: item.call_id, name: item.name, args: JSON.parse(item.arguments) })
      if (item.type === 'function_call_output') turns.results.push({ id: item.call_id, text: textOf(item.output) })
    }
  } else {
    for (const part of list(body.contents).flatMap((c) => list(c.parts))) {
      const call = part.functionCall
      const response = part.functionResponse
      if (call) turns.calls.push({ id: call.id, name: call.name, args: call.args })
      if (response) turns.results.push({ id: response.id, text: JSON.stringify(response.response) })
    }
  }
  return turns
}
