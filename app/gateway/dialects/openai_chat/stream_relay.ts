import type { ServerResponse } from 'node:http'
import { SseParser } from '#gateway/sse/sse_parser'
import { usageFromOpenAi } from '#gateway/dialects/openai_chat/usage'
import type { TokenUsage } from '#gateway/types'

export interface OpenAiStreamOptions {
  /** Drop the usage-only chunk the gateway asked for when the client did not */
  stripUsageChunk: boolean
  /** Rewrite `model` in each chunk to the client-facing name (model mapping) */
  clientModel: string | null
  /** Headers sent with the first byte */
  headers: Record<string, string>
  /** Called when the first byte is written to the client */
  onFirstByte: () => void
}

export interface OpenAiStreamResult {
  usage: TokenUsage | null
  /** Streamed completion text, for counting when the upstream reported no usage */
  completionText: () => string
  /** Upstream failure after the stream started, if any */
  error: Error | null
  clientClosed: boolean
}

/**
 * Relays an OpenAI chat-completions SSE stream to the client event by event,
 * as soon as each arrives (nothing is buffered beyond one upstream chunk),
 * reading usage on the way. Payloads are kept only until usage arrives, so
 * text can be counted if the stream ends without it.
 */
export async function relayOpenAiStream(
  upstream: AsyncIterable<Buffer>,
  res: ServerResponse,
  options: OpenAiStreamOptions
): Promise<OpenAiStreamResult> {
  const parser = new SseParser()
  let usage: TokenUsage | null = null
  let payloads: string[] | null = []
  let started = false
  let error: Error | null = null

  const write = async (text: string) => {
    if (res.destroyed) return
    if (!started) {
      started = true
      res.writeHead(200, options.headers)
      options.onFirstByte()
    }
    if (!res.write(text)) await drained(res)
  }

  try {
    for await (const chunk of upstream) {
      let out = ''
      for (const event of parser.push(chunk)) {
        const data = event.data
        if (data === '[DONE]') {
          out += 'data: [DONE]\n\n'
          continue
        }
        let payload = data
        if (data.includes('"usage"') || options.clientModel) {
          let parsed: any
          try {
            parsed = JSON.parse(data)
          } catch {
            parsed = null
          }
          if (parsed) {
            const found = usageFromOpenAi(parsed.usage)
            if (found) {
              usage = found
              payloads = null
              if (options.stripUsageChunk && Array.isArray(parsed.choices) && parsed.choices.length === 0) {
                continue
              }
            }
            if (options.clientModel && typeof parsed.model === 'string') {
              parsed.model = options.clientModel
              payload = JSON.stringify(parsed)
            }
          }
        }
        if (payloads) payloads.push(data)
        out += event.event ? `event: ${event.event}\ndata: ${payload}\n\n` : `data: ${payload}\n\n`
      }
      if (out) await write(out)
      if (res.destroyed) break
    }
  } catch (caught) {
    error = caught as Error
  }

  const clientClosed = res.destroyed && !res.writableFinished
  if (error && !clientClosed) {
    // The stream already started: the failure becomes an error event.
    const message = `Upstream stream failed: ${error.message || 'connection reset'}`
    await write(
      `data: ${JSON.stringify({ error: { message, type: 'upstream_error', code: 'provider_error' } })}\n\n`
    ).catch(() => {})
  }
  if (!res.destroyed) {
    if (!started) {
      res.writeHead(200, options.headers)
      options.onFirstByte()
    }
    res.end()
  }

  const kept = payloads
  return {
    usage,
    error,
    clientClosed: clientClosed || (error !== null && res.destroyed),
    completionText: () => (kept ? completionTextOf(kept) : ''),
  }
}

/** Concatenated content, reasoning and tool-call text of chat-completion chunks. */
export function completionTextOf(payloads: string[]): string {
  let text = ''
  for (const data of payloads) {
    let chunk: any
    try {
      chunk = JSON.parse(data)
    } catch {
      continue
    }
    for (const choice of chunk?.choices ?? []) {
      const delta = choice?.delta ?? choice?.message
      if (!delta) continue
      if (typeof delta.content === 'string') text += delta.content
      if (typeof delta.reasoning_content === 'string') text += delta.reasoning_content
      if (typeof delta.reasoning === 'string') text += delta.reasoning
      for (const call of delta.tool_calls ?? []) {
        if (call?.function?.name) text += call.function.name
        if (call?.function?.arguments) text += call.function.arguments
      }
    }
  }
  return text
}

/** Resolves when the socket can take more, or when it closed. */
function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done)
      res.off('close', done)
      resolve()
    }
    res.on('drain', done)
    res.on('close', done)
  })
}
