import type { IncomingHttpHeaders } from 'node:http'
import { splitBaseUrl, type ProviderAdapter, type UpstreamRequest } from '#gateway/providers/provider_adapter'
import { VENDORS } from '#gateway/providers/vendors'
import type { ChannelInfo } from '#gateway/types'

/**
 * OpenAI, OpenRouter, DeepSeek, Z.ai, Gemini's OpenAI endpoint and any custom
 * OpenAI-compatible server (vLLM, Ollama, Groq, Qwen): `{base}/chat/completions`
 * with a Bearer key, the channel's extra headers and the vendor's forwarded
 * client headers.
 */
export class OpenAiCompatibleAdapter implements ProviderAdapter {
  readonly dialect = 'openai' as const
  #bases = new WeakMap<ChannelInfo, { origin: string; basePath: string }>()

  chatCompletions(channel: ChannelInfo, body: string | Buffer, clientHeaders: IncomingHttpHeaders): UpstreamRequest {
    const { origin, basePath } = this.#base(channel)
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'accept': 'application/json, text/event-stream',
    }
    if (channel.apiKey) headers['authorization'] = `Bearer ${channel.apiKey}`
    for (const name of VENDORS[channel.provider]?.forwardHeaders ?? []) {
      const value = clientHeaders[name]
      if (typeof value === 'string') headers[name] = value
    }
    for (const [name, value] of Object.entries(channel.extraHeaders)) headers[name.toLowerCase()] = value
    return { origin, path: `${basePath}/chat/completions`, headers, body }
  }

  modelsPath(channel: ChannelInfo): UpstreamRequest {
    const { origin, basePath } = this.#base(channel)
    const headers: Record<string, string> = {}
    if (channel.apiKey) headers['authorization'] = `Bearer ${channel.apiKey}`
    return { origin, path: `${basePath}/models`, headers, body: '' }
  }

  #base(channel: ChannelInfo) {
    let base = this.#bases.get(channel)
    if (!base) {
      base = splitBaseUrl(channel.baseUrl)
      this.#bases.set(channel, base)
    }
    return base
  }
}

export const openAiCompatibleAdapter = new OpenAiCompatibleAdapter()
