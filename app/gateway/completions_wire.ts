import type { CanonicalEvent, StreamDecoder } from '#gateway/dialects/canonical'
import { parseJson, type StreamCut } from '#gateway/dialects/dialect'
import { openAiChat } from '#gateway/dialects/openai_chat/index'
import type { PassThroughFormat } from '#gateway/relay/pass_through_stream'
import type { SseEvent } from '#gateway/sse/sse_parser'

/**
 * OpenAI's legacy text completions (`POST /v1/completions`, FIM with
 * `suffix`), as far as the gateway reads them. The format is only ever
 * passed through (no channel speaks anything else for it), so it is no
 * dialect: just the checks, the texts to count when an upstream reports no
 * usage, and the stream rules.
 */

const PROMPT_SHAPE = 'prompt: expected a string, an array of strings, an array of token ids or an array of token-id arrays'

function isTokenId(value: unknown): boolean {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0
}

function isTokenList(value: unknown): boolean {
  if (!Array.isArray(value) || value.length === 0) return false
  for (let i = 0; i < value.length; i++) if (!isTokenId(value[i])) return false
  return true
}

/**
 * What is wrong with a completions `prompt`, or null: a string, an array of
 * strings, an array of token ids, or an array of token-id arrays (OpenAI's
 * four forms). Checked by the gateway, not the upstream: a malformed prompt
 * is the client's 400, never a failure counted against a channel.
 */
export function promptProblem(prompt: unknown): string | null {
  if (typeof prompt === 'string') return null
  if (!Array.isArray(prompt)) return prompt === undefined || prompt === null ? 'prompt: required' : PROMPT_SHAPE
  if (prompt.length === 0) return 'prompt: must not be an empty array'
  const first = prompt[0]
  if (typeof first === 'string') return prompt.every((p) => typeof p === 'string') ? null : PROMPT_SHAPE
  if (typeof first === 'number') return isTokenList(prompt) ? null : PROMPT_SHAPE
  return prompt.every(isTokenList) ? null : PROMPT_SHAPE
}

/** A prompt as counted: its text (prompts and suffix), and the token ids it gave as numbers. */
export interface PromptParts {
  text: string
  tokenIds: number
}

/** The texts and token ids of a (checked) completions body, for an estimate. */
export function promptParts(body: Record<string, any>): PromptParts {
  const prompt = body.prompt
  const texts: string[] = []
  let tokenIds = 0
  if (typeof prompt === 'string') texts.push(prompt)
  else if (Array.isArray(prompt)) {
    for (const item of prompt) {
      if (typeof item === 'string') texts.push(item)
      else if (typeof item === 'number') tokenIds++
      else if (Array.isArray(item)) tokenIds += item.length
    }
  }
  if (typeof body.suffix === 'string' && body.suffix.length > 0) texts.push(body.suffix)
  return { text: texts.join('\n'), tokenIds }
}

/** The generated text of a completions answer (every choice). */
export function completionText(answer: any): string {
  const choices = answer?.choices
  if (!Array.isArray(choices)) return ''
  let text = ''
  for (const choice of choices) if (typeof choice?.text === 'string') text += choice.text
  return text
}

/** Completion chunks -> text deltas (every choice's), for counting a stream that ends without usage. */
export class CompletionStreamDecoder implements StreamDecoder {
  push(event: { data: string }): CanonicalEvent[] {
    if (event.data === '[DONE]') return []
    const chunk = parseJson(event.data)
    if (!chunk || typeof chunk !== 'object') return []
    if (chunk.error) return [{ type: 'error', message: String(chunk.error.message ?? 'upstream error') }]
    const text = completionText(chunk)
    return text ? [{ type: 'delta', index: 0, kind: 'text', value: text }] : []
  }

  end(): CanonicalEvent[] {
    return []
  }
}

/**
 * A completions stream stopped by the gateway (a listed word in the answer):
 * a last chunk with finish_reason "content_filter" under the stream's id and
 * model, then `[DONE]`, as chat's (ChatStreamCut). Its decoder makes no
 * start event: the first chunk is read for them, once.
 */
class CompletionStreamCut implements StreamCut {
  #id: string | null = null
  #model = ''

  seen(event: SseEvent) {
    if (this.#id !== null) return
    const chunk = parseJson(event.data)
    this.#id = typeof chunk?.id === 'string' ? chunk.id : ''
    if (typeof chunk?.model === 'string') this.#model = chunk.model
  }

  end(_usage: unknown, model: string | null): SseEvent[] {
    const chunk = {
      id: this.#id || `cmpl-${Date.now().toString(36)}`,
      object: 'text_completion',
      created: Math.floor(Date.now() / 1000),
      model: model ?? this.#model,
      choices: [{ text: '', index: 0, logprobs: null, finish_reason: 'content_filter' }],
    }
    return [{ data: JSON.stringify(chunk) }, { data: '[DONE]' }]
  }
}

/**
 * How a completions stream is relayed. Its chunks are chat's in everything
 * the relay reads (`model`, a `usage` member, OpenAI's usage-only chunk with
 * `choices: []` after `stream_options.include_usage`, `[DONE]`), and so are
 * its request's `model`, `stream` and `stream_options`: chat's pass-through
 * rules apply as they are, asking the upstream for usage on a stream and
 * dropping the usage chunk the client did not ask for.
 */
export const textCompletionsFormat: PassThroughFormat = {
  passThrough: { ...openAiChat.passThrough, streamCut: () => new CompletionStreamCut() },
  streamDecoder: () => new CompletionStreamDecoder(),
}
