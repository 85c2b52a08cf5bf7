import type { TokenUsage } from '#gateway/types'

/**
 * Reading the upstream's server events, as little as metering (and the
 * concealment of the channel in the upstream's `error` events) needs. Most
 * frames are audio deltas (tens of KB of base64 each) and none of them is
 * parsed: OpenAI writes `type` first, so the type is read from the frame's
 * opening bytes; a frame that does not open so is parsed only when it names
 * one of the events metering watches.
 */
export type WatchedEvent = 'response.created' | 'response.done' | 'error'

const TYPE_OPENING = Buffer.from('{"type":"')
const CREATED = Buffer.from('"response.created"')
const DONE = Buffer.from('"response.done"')
const ERROR = Buffer.from('"error"')

/** The watched event a text frame is, or null (without parsing it, as a rule: see above). */
export function watchedEventOf(frame: Buffer): WatchedEvent | null {
  if (frame.length > TYPE_OPENING.length && frame.compare(TYPE_OPENING, 0, TYPE_OPENING.length, 0, TYPE_OPENING.length) === 0) {
    const start = TYPE_OPENING.length
    const end = frame.indexOf(0x22, start)
    if (end < 0) return null
    return asWatched(frame.toString('latin1', start, end))
  }
  // Keys in another order (another server): parsed only when it may be one of them.
  if (frame.indexOf(DONE) < 0 && frame.indexOf(CREATED) < 0 && frame.indexOf(ERROR) < 0) return null
  try {
    return asWatched(JSON.parse(frame.toString('utf8'))?.type)
  } catch {
    return null
  }
}

function asWatched(type: unknown): WatchedEvent | null {
  return type === 'response.done' || type === 'response.created' || type === 'error' ? type : null
}

/** What a `response.done` says: the response's final status and its usage (null when it reports none). */
export interface ResponseDone {
  /** The response's id ('' when it has none) */
  id: string
  status: string
  usage: TokenUsage | null
}

export function readResponseDone(frame: Buffer): ResponseDone {
  let event: any
  try {
    event = JSON.parse(frame.toString('utf8'))
  } catch {
    return { id: '', status: 'unreadable', usage: null }
  }
  const response = event?.response
  const status = typeof response?.status === 'string' ? response.status : 'completed'
  return { id: String(response?.id ?? ''), status, usage: realtimeUsage(response?.usage) }
}

/**
 * `response.usage` of the Realtime API as the meter's counts: input_tokens
 * (text, audio and image tokens, the cached ones included) and output_tokens
 * (text and audio), cached_tokens from input_token_details; the audio
 * tokens among them (input_token_details.audio_tokens, its
 * cached_tokens_details.audio_tokens, output_token_details.audio_tokens),
 * billed at the model's audio prices when it has them (pricing.ts).
 */
export function realtimeUsage(usage: any): TokenUsage | null {
  if (usage === null || typeof usage !== 'object') return null
  const input = count(usage.input_tokens)
  const output = count(usage.output_tokens)
  const cached = Math.min(count(usage.input_token_details?.cached_tokens), input)
  const audioInput = Math.min(count(usage.input_token_details?.audio_tokens), input)
  return {
    promptTokens: input,
    completionTokens: output,
    totalTokens: input + output,
    cachedTokens: cached,
    reasoningTokens: 0,
    audioPromptTokens: audioInput,
    cachedAudioTokens: Math.min(count(usage.input_token_details?.cached_tokens_details?.audio_tokens), cached, audioInput),
    audioCompletionTokens: Math.min(count(usage.output_token_details?.audio_tokens), output),
    estimated: false,
  }
}

function count(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) && value > 0 ? Math.floor(value) : 0
}

/** An `error` server event in OpenAI's shape (what the gateway tells a client before it closes the session). */
export function errorEvent(type: string, code: string, message: string): string {
  return JSON.stringify({
    type: 'error',
    event_id: `event_gw_${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`,
    error: { type, code, message, param: null, event_id: null },
  })
}
