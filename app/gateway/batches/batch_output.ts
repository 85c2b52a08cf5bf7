import { MAX_TOKEN_COUNT, tokenCount } from '#gateway/metering/token_counts'
import { forEachChunk } from '#gateway/upstream/dispatcher'
import type { TokenUsage } from '#gateway/types'

/** What a batch's output file says it used: the sums of its lines' `response.body.usage`. */
export interface OutputUsage {
  promptTokens: number
  completionTokens: number
  cachedTokens: number
  reasoningTokens: number
  /** Lines answered with a 2xx (the per-request price's units) */
  requests: number
}

/**
 * Reads a batch output file (JSONL, one `{id, custom_id, response:
 * {status_code, body}, error}` a line) as it streams in, never holding more
 * than the line being read, and sums the usage of each line's answer: chat
 * and completions (`prompt_tokens`, `completion_tokens`,
 * `prompt_tokens_details.cached_tokens`), Responses (`input_tokens`,
 * `output_tokens`...), embeddings (`prompt_tokens`). A line that is not JSON
 * or carries no usage adds nothing.
 */
export async function sumOutputUsage(body: AsyncIterable<Buffer>): Promise<OutputUsage> {
  const sums: OutputUsage = { promptTokens: 0, completionTokens: 0, cachedTokens: 0, reasoningTokens: 0, requests: 0 }
  const pending: Buffer[] = []
  await forEachChunk(body, (chunk) => {
    let start = 0
    for (;;) {
      const newline = chunk.indexOf(0x0a, start)
      if (newline < 0) {
        if (start < chunk.length) pending.push(chunk.subarray(start))
        return
      }
      const piece = chunk.subarray(start, newline)
      addLine(sums, pending.length > 0 ? Buffer.concat([...pending, piece]) : piece)
      pending.length = 0
      start = newline + 1
    }
  })
  if (pending.length > 0) addLine(sums, Buffer.concat(pending))
  return sums
}

function addLine(sums: OutputUsage, bytes: Buffer) {
  if (bytes.length === 0) return
  let line: any
  try {
    line = JSON.parse(bytes.toString('utf8'))
  } catch {
    return
  }
  const response = line?.response
  const status = Number(response?.status_code)
  if (status >= 200 && status < 300) sums.requests++
  const usage = response?.body?.usage
  if (usage === null || typeof usage !== 'object') return
  sums.promptTokens += tokenCount(usage.prompt_tokens ?? usage.input_tokens)
  sums.completionTokens += tokenCount(usage.completion_tokens ?? usage.output_tokens)
  sums.cachedTokens += tokenCount(usage.prompt_tokens_details?.cached_tokens ?? usage.input_tokens_details?.cached_tokens)
  sums.reasoningTokens += tokenCount(usage.completion_tokens_details?.reasoning_tokens ?? usage.output_tokens_details?.reasoning_tokens)
}

/**
 * The sums as a usage row's counts. The row's columns take at most
 * MAX_TOKEN_COUNT each: a batch beyond it (50,000 long requests) is billed
 * for all it used (batchCost is given the sums) and shows the cap.
 */
export function tokenUsageOf(sums: OutputUsage): TokenUsage {
  const cap = (n: number) => (n > MAX_TOKEN_COUNT ? MAX_TOKEN_COUNT : n)
  const promptTokens = cap(sums.promptTokens)
  const completionTokens = cap(sums.completionTokens)
  const cachedTokens = Math.min(cap(sums.cachedTokens), promptTokens)
  return {
    promptTokens,
    completionTokens,
    totalTokens: promptTokens + completionTokens,
    cachedTokens,
    reasoningTokens: Math.min(cap(sums.reasoningTokens), completionTokens),
    requestUnits: sums.requests,
    estimated: false,
  }
}

/** The sums as costOf reads them (uncapped: every token is billed). */
export function billedUsage(sums: OutputUsage): TokenUsage {
  return {
    promptTokens: sums.promptTokens,
    completionTokens: sums.completionTokens,
    totalTokens: sums.promptTokens + sums.completionTokens,
    cachedTokens: Math.min(sums.cachedTokens, sums.promptTokens),
    reasoningTokens: sums.reasoningTokens,
    estimated: false,
  }
}
