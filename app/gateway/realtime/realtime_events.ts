import type { TokenUsage } from '#gateway/types'

/**
 * Reading the upstream's server events, as little as metering (and the
 * concealment of the channel in the upstream's `error` events) needs. Most
 * frames are audio deltas (tens of KB of base64 each) and none of them is
 * parsed: OpenAI writes `type` first, so the type is read from the frame's
 * opening bytes; a frame that does not open so is parsed only when it names
 * one of the events metering watches. Only the few watched events (a
 * response's start and end, the session's settings, a transcription's
 * usage, errors) are ever parsed.
 */
/** The server events the gateway reads; every other frame is relayed unread. */
const WATCHED = [
  'response.created',
  'response.done',
  'error',
  'session.created',
  'session.updated',
  // The beta dialect's transcription sessions (transcription_sessions.ts) say their settings so.
  'transcription_session.created',
  'transcription_session.updated',
  'conversation.item.input_audio_transcription.completed',
  // A transcription session's audio committed, and a transcription that failed: what its end waits for.
  'input_audio_buffer.committed',
  'conversation.item.input_audio_transcription.failed',
] as const
export type WatchedEvent = (typeof WATCHED)[number]

const WATCHED_TYPES = new Set<string>(WATCHED)
const TYPE_OPENING = Buffer.from('{"type":"')
const QUOTED_TYPES = WATCHED.map((type) => Buffer.from(`"${type}"`))

/** The watched event a text frame is, or null (without parsing it, as a rule: see above). */
export function watchedEventOf(frame: Buffer): WatchedEvent | null {
  if (frame.length > TYPE_OPENING.length && frame.compare(TYPE_OPENING, 0, TYPE_OPENING.length, 0, TYPE_OPENING.length) === 0) {
    const start = TYPE_OPENING.length
    const end = frame.indexOf(0x22, start)
    if (end < 0) return null
    return asWatched(frame.toString('latin1', start, end))
  }
  // Keys in another order (another server): parsed only when it may be one of them.
  if (!QUOTED_TYPES.some((quoted) => frame.indexOf(quoted) >= 0)) return null
  try {
    return asWatched(JSON.parse(frame.toString('utf8'))?.type)
  } catch {
    return null
  }
}

function asWatched(type: unknown): WatchedEvent | null {
  return typeof type === 'string' && WATCHED_TYPES.has(type) ? (type as WatchedEvent) : null
}

/**
 * The input audio transcription model a `session.created` / `session.updated`
 * names: the GA shape's `session.audio.input.transcription.model`, the
 * beta's `session.input_audio_transcription.model`; null when transcription
 * is off, undefined when the event does not say.
 */
export function transcriptionModelOf(frame: Buffer): string | null | undefined {
  let session: any
  try {
    session = JSON.parse(frame.toString('utf8'))?.session
  } catch {
    return undefined
  }
  if (session === null || typeof session !== 'object') return undefined
  const setting = session.audio?.input !== undefined ? session.audio.input.transcription : session.input_audio_transcription
  if (setting === undefined) return undefined
  return typeof setting?.model === 'string' && setting.model !== '' ? setting.model : null
}

/** What a client's event sets of the session's models (see requestedModels). */
export interface RequestedModels {
  /** The event, parsed: what goes upstream (re-serialized, so the upstream reads exactly what was checked) */
  event: Record<string, any>
  /**
   * The input audio transcription models it names (string values only: any
   * other is the upstream's to refuse), where, and the setting holding it
   * (inside `event`: a transcription session sends the channel's name up)
   */
  transcription: Array<{ model: string; param: string; setting: Record<string, any> }>
  /** `session.model`, when it names one (OpenAI refuses a change; an OpenAI-compatible server may switch) */
  sessionModel: string | null
  /** The client's event_id, for the error event that answers it */
  eventId: string | null
}

const TRANSCRIPTION = Buffer.from('transcription')
const MODEL_KEY = Buffer.from('"model"')
const UNICODE_ESCAPE = Buffer.from('\\u')

/**
 * Does a client's frame set a model of the session? The input audio
 * transcription's (billed apart: it must be one the key may use), in
 * `session.update`'s GA `session.audio.input.transcription` or beta
 * `session.input_audio_transcription`, or the session's own `session.model`
 * (metered as the model the session was opened with), whatever the
 * event's type says. Audio appends (most frames, tens of KB) are never
 * parsed: a frame without the word `transcription`, the key `"model"`
 * (quoted: inside a JSON string a quote is escaped) or a `\u` escape (the
 * only way JSON can spell those otherwise) cannot set one. null: the frame
 * sets none; 'unreadable': it might, but is no JSON object the gateway can
 * read (refused: what the upstream would read of it is unknown).
 */
export function requestedModels(frame: Buffer): RequestedModels | null | 'unreadable' {
  if (frame.indexOf(TRANSCRIPTION) < 0 && frame.indexOf(MODEL_KEY) < 0 && frame.indexOf(UNICODE_ESCAPE) < 0) return null
  let event: any
  try {
    event = JSON.parse(frame.toString('utf8'))
  } catch {
    return 'unreadable'
  }
  if (event === null || typeof event !== 'object' || Array.isArray(event)) return 'unreadable'
  const session = event.session
  if (session === null || typeof session !== 'object') return null
  const settings: Array<[unknown, string]> = [
    [session.audio?.input?.transcription, 'session.audio.input.transcription.model'],
    [session.input_audio_transcription, 'session.input_audio_transcription.model'],
  ]
  let named = false
  const transcription: RequestedModels['transcription'] = []
  for (const [setting, param] of settings) {
    if (setting === undefined) continue
    named = true
    const model = (setting as any)?.model
    if (typeof model === 'string') transcription.push({ model, param, setting: setting as Record<string, any> })
  }
  const sessionModel = typeof session.model === 'string' ? session.model : null
  if (!named && sessionModel === null) return null
  return { event, transcription, sessionModel, eventId: typeof event.event_id === 'string' ? event.event_id.slice(0, 100) : null }
}

/** What a completed transcription reports: its usage, and the item it transcribed (`item_id:content_index`; null when unnamed). */
export interface CompletedTranscription {
  usage: TokenUsage
  item: string | null
}

/**
 * The usage a `conversation.item.input_audio_transcription.completed`
 * reports (OpenAI bills the transcription of the user's audio apart, at the
 * transcription model's prices): tokens (gpt-4o-transcribe: input tokens,
 * audio among them, and output tokens) or seconds of audio (whisper-1);
 * null when it reports none.
 */
export function transcriptionUsage(frame: Buffer): CompletedTranscription | null {
  let event: any
  try {
    event = JSON.parse(frame.toString('utf8'))
  } catch {
    return null
  }
  const usage = event?.usage
  if (usage === null || typeof usage !== 'object') return null
  const item = typeof event.item_id === 'string' && event.item_id !== '' ? `${event.item_id.slice(0, 200)}:${Number(event.content_index) || 0}` : null
  if (usage.type === 'duration') {
    const seconds = typeof usage.seconds === 'number' && Number.isFinite(usage.seconds) && usage.seconds > 0 ? usage.seconds : 0
    return {
      usage: { promptTokens: 0, completionTokens: 0, totalTokens: 0, cachedTokens: 0, reasoningTokens: 0, audioMillis: Math.round(seconds * 1000), estimated: false },
      item,
    }
  }
  const input = count(usage.input_tokens)
  const output = count(usage.output_tokens)
  return {
    usage: {
      promptTokens: input,
      completionTokens: output,
      totalTokens: input + output,
      cachedTokens: 0,
      reasoningTokens: 0,
      audioPromptTokens: Math.min(count(usage.input_token_details?.audio_tokens), input),
      estimated: false,
    },
    item,
  }
}

/** The `item_id` an event names, or null */
export function itemIdOf(frame: Buffer): string | null {
  try {
    const item = JSON.parse(frame.toString('utf8'))?.item_id
    return typeof item === 'string' && item !== '' ? item.slice(0, 200) : null
  } catch {
    return null
  }
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
export function errorEvent(type: string, code: string, message: string, param: string | null = null, eventId: string | null = null): string {
  return JSON.stringify({
    type: 'error',
    event_id: `event_gw_${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`,
    error: { type, code, message, param, event_id: eventId },
  })
}
