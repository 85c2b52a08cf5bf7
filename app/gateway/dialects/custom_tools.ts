import type { CanonicalEvent, CanonicalRequest, CanonicalResponse } from '#gateway/dialects/canonical'
import type { EventTransform } from '#gateway/relay/translated_stream'

/**
 * Custom (free-form, grammar) tools exist only in OpenAI's dialects. Offered
 * to any other upstream they become JSON functions with one string argument
 * `input` (see the encoders); these helpers turn the calls that come back
 * into custom calls with the raw input again.
 */
export function customToolNames(request: CanonicalRequest): Set<string> {
  const names = new Set<string>()
  for (const tool of request.tools) if (tool.custom) names.add(tool.name)
  return names
}

function unwrap(args: string): string {
  try {
    const parsed = JSON.parse(args)
    if (parsed && typeof parsed.input === 'string') return parsed.input
  } catch {}
  return args
}

export function unwrapCustomCalls(response: CanonicalResponse, names: Set<string>): CanonicalResponse {
  if (names.size === 0) return response
  for (const part of response.content) {
    if (part.type === 'tool_call' && names.has(part.name)) {
      part.custom = true
      part.arguments = unwrap(part.arguments)
    }
  }
  return response
}

/** Stream form: a custom call's argument deltas are held until its block ends, then sent unwrapped. */
export function customToolTransform(names: Set<string>): EventTransform | undefined {
  if (names.size === 0) return undefined
  const held = new Map<number, string>()
  return (event: CanonicalEvent): CanonicalEvent[] => {
    if (event.type === 'block_start' && event.block.type === 'tool_call' && names.has(event.block.name)) {
      held.set(event.index, '')
      return [{ ...event, block: { ...event.block, custom: true } }]
    }
    if (event.type === 'delta' && held.has(event.index)) {
      held.set(event.index, held.get(event.index)! + event.value)
      return []
    }
    if (event.type === 'block_stop' && held.has(event.index)) {
      const args = held.get(event.index)!
      held.delete(event.index)
      return [{ type: 'delta', index: event.index, kind: 'arguments', value: unwrap(args) }, event]
    }
    return [event]
  }
}
