import type { DialectName } from '#gateway/dialects/canonical'
import {
  baseOf,
  socketOrigin,
  withChannelHeaders,
  type ProviderAdapter,
  type UpstreamCall,
  type UpstreamRequest,
  type RelayedService,
  type UpstreamSocketRequest,
} from '#gateway/providers/provider_adapter'
import { VENDORS } from '#gateway/providers/vendors'
import type { ChannelInfo } from '#gateway/types'

/** Endpoint paths under an OpenAI-compatible base, by dialect and operation (also Azure's). */
export const OPENAI_PATHS: Record<string, string> = {
  openai_chat: '/chat/completions',
  openai_responses: '/responses',
  embeddings: '/embeddings',
  images: '/images/generations',
  image_edits: '/images/edits',
  image_variations: '/images/variations',
  completions: '/completions',
  audio_transcriptions: '/audio/transcriptions',
  audio_translations: '/audio/translations',
  audio_speech: '/audio/speech',
  rerank: '/rerank',
  moderations: '/moderations',
}

/**
 * OpenAI, OpenRouter, DeepSeek, Z.ai, Gemini's OpenAI endpoint and any custom
 * OpenAI-compatible server (vLLM, Ollama, Groq, Qwen): `{base}/chat/completions`
 * with a Bearer key, the channel's extra headers and the vendor's forwarded
 * client headers. Vendors differ by configuration (vendors.ts), not code.
 */
export class OpenAiCompatibleAdapter implements ProviderAdapter {
  dialects(channel: ChannelInfo): readonly DialectName[] {
    return VENDORS[channel.provider]?.dialects ?? ['openai_chat']
  }

  encodeHints(channel: ChannelInfo) {
    return VENDORS[channel.provider]?.encodeHints
  }

  countsTokens() {
    return false
  }

  embeddings() {
    return 'openai' as const
  }

  /** Every relayed service of OpenAI's (not Google's `:predict`); legacy completions unless the vendor has none (vendors.ts: Gemini's OpenAI endpoint). */
  offers(channel: ChannelInfo, service: RelayedService) {
    if (service === 'predict') return false
    return service !== 'completions' || VENDORS[channel.provider]?.textCompletions !== false
  }

  request(channel: ChannelInfo, call: UpstreamCall): UpstreamRequest {
    const { origin, basePath } = baseOf(channel)
    const headers: Record<string, string> = {
      'content-type': call.contentType ?? 'application/json',
      // Speech answers audio; a transcription text, srt or vtt when asked for.
      'accept': call.operation.startsWith('audio_') ? '*/*' : 'application/json, text/event-stream',
    }
    if (channel.apiKey) headers['authorization'] = `Bearer ${channel.apiKey}`
    withChannelHeaders(headers, channel, call.clientHeaders, VENDORS[channel.provider]?.forwardHeaders ?? [])
    if (call.operation === 'generate') return { origin, path: `${basePath}${OPENAI_PATHS[call.dialect] ?? OPENAI_PATHS.openai_chat}`, headers, body: call.body }
    // A vendor may serve an operation elsewhere than its base (DeepSeek's completions under /beta): configuration, vendors.ts.
    const moved = VENDORS[channel.provider]?.operationBases?.[call.operation]
    const base = moved ? basePath.replace(moved[0], moved[1]) : basePath
    return { origin, path: `${base}${OPENAI_PATHS[call.operation] ?? OPENAI_PATHS.openai_chat}`, headers, body: call.body }
  }

  /** `{base}/realtime?model=` over ws(s), Bearer key: OpenAI and custom servers (vendors.ts `realtime`) */
  realtime(channel: ChannelInfo, model: string): UpstreamSocketRequest | null {
    if (VENDORS[channel.provider]?.realtime !== true) return null
    const { origin, basePath } = baseOf(channel)
    const headers: Record<string, string> = {}
    if (channel.apiKey) headers['authorization'] = `Bearer ${channel.apiKey}`
    withChannelHeaders(headers, channel, {}, [])
    return { url: `${socketOrigin(origin)}${basePath}/realtime?model=${encodeURIComponent(model)}`, headers }
  }

  modelsPath(channel: ChannelInfo): UpstreamRequest {
    const { origin, basePath } = baseOf(channel)
    const headers: Record<string, string> = {}
    if (channel.apiKey) headers['authorization'] = `Bearer ${channel.apiKey}`
    withChannelHeaders(headers, channel, {}, [])
    return { method: 'GET', origin, path: `${basePath}/models`, headers, body: '' }
  }
}

export const openAiCompatibleAdapter = new OpenAiCompatibleAdapter()
