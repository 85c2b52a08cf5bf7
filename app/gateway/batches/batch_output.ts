import { searchedOnce } from '#gateway/dialects/openai_chat/response'
import { MAX_TOKEN_COUNT, MAX_WEB_SEARCHES, reportedCount, tokenCount } from '#gateway/metering/token_counts'
import { decodeAnthropicUsage } from '#gateway/dialects/anthropic_messages/response'
import { geminiUsageOfBody } from '#gateway/dialects/gemini/response'
import { forEachChunk } from '#gateway/upstream/dispatcher'
import { answerBudget, answerLimits, FREE_ANSWER_BYTES, UpstreamAnswersOverBudget, UpstreamAnswerTooLarge } from '#gateway/upstream/answer_limits'
import type { TokenUsage } from '#gateway/types'
import type { CanonicalUsage } from '#gateway/dialects/canonical'
import type { BilledOnce } from '#gateway/batches/custom_ids'

/**
 * What a batch's output says it used: the sums of its lines' usage (OpenAI's
 * output file's `response.body.usage`, Anthropic's results' `result.message.usage`).
 */
export interface OutputUsage {
  /** Every prompt token, those read from and written to the cache included */
  promptTokens: number
  completionTokens: number
  cachedTokens: number
  reasoningTokens: number
  /** Prompt tokens written to the cache (Anthropic's cache_creation_input_tokens) */
  cacheWriteTokens: number
  /** Of those, writes to the one-hour cache (`cache_creation.ephemeral_1h_input_tokens`: its own price) */
  cacheWrite1hTokens: number
  /** Server-side web searches (Anthropic's `server_tool_use.web_search_requests`, Responses' `web_search_call` items) */
  webSearches: number
  /** Audio tokens among the prompt and the completion tokens (chat's `audio_tokens` details: the audio prices) */
  audioPromptTokens: number
  /** Of the audio prompt tokens, those read from the cache (Gemini's cacheTokensDetails AUDIO: the cached audio price) */
  cachedAudioTokens: number
  audioCompletionTokens: number
  /** Image tokens among the completion tokens (an image model's `image_tokens` details: the image output price) */
  imageCompletionTokens: number
  /** Lines answered with a 2xx, or Anthropic's `succeeded` results (the per-request price's units) */
  requests: number
  /** Some of the tokens are the gateway's count, not the upstream's (an embedding answer without its tokenCount) */
  estimated: boolean
}

export function noUsage(): OutputUsage {
  return {
    promptTokens: 0,
    completionTokens: 0,
    cachedTokens: 0,
    reasoningTokens: 0,
    cacheWriteTokens: 0,
    cacheWrite1hTokens: 0,
    webSearches: 0,
    audioPromptTokens: 0,
    cachedAudioTokens: 0,
    audioCompletionTokens: 0,
    imageCompletionTokens: 0,
    requests: 0,
    estimated: false,
  }
}

/**
 * Reads a batch output file (JSONL, one `{id, custom_id, response:
 * {status_code, body}, error}` a line) as it streams in, never holding more
 * than the line being read, and sums the usage of each line's answer: chat
 * and completions (`prompt_tokens`, `completion_tokens`,
 * `prompt_tokens_details.cached_tokens`, `audio_tokens`), Responses (`input_tokens`,
 * `output_tokens`..., and its `web_search_call` output items), embeddings
 * (`prompt_tokens`). A line that is not JSON
 * or carries no usage adds nothing, and so does a line `once` refuses (a
 * custom id already billed, or one the batch never had).
 */
export function sumOutputUsage(body: AsyncIterable<Buffer>, once: BilledOnce): Promise<OutputUsage> {
  return sumLines(body, (sums, bytes) => addLine(sums, bytes, once))
}

/**
 * Reads a message batch's results (JSONL, one `{custom_id, result: {type:
 * succeeded | errored | canceled | expired, message | error}}` a line) as
 * they stream in, and sums each succeeded message's usage as /v1/messages
 * reads it (decodeAnthropicUsage: input, cache reads and writes, one-hour
 * writes, output, thinking, web searches), each custom id's once (as sumOutputUsage).
 */
export function sumResultsUsage(body: AsyncIterable<Buffer>, once: BilledOnce): Promise<OutputUsage> {
  return sumLines(body, (sums, bytes) => addResultLine(sums, bytes, once))
}

/**
 * Each line of a JSONL stream given to `add`, never holding more than the
 * line being read (readJsonLines), summed into one OutputUsage.
 */
async function sumLines(body: AsyncIterable<Buffer>, add: (sums: OutputUsage, bytes: Buffer) => void): Promise<OutputUsage> {
  const sums = noUsage()
  await readJsonLines(body, (bytes) => add(sums, bytes))
  return sums
}

/**
 * Each line of a JSONL stream given to `each` (its bytes, without the
 * newline; the last line's even without one), never holding more than the
 * line being read. A line is one request's answer (or one request), so it is
 * bounded as one whole answer is (answerLimits.bodyBytes,
 * UPSTREAM_BODY_MAX_MB), and what it holds past its first MB is taken from
 * the instance's budget of answers being read (UPSTREAM_INFLIGHT_MAX_MB)
 * while it is held: an upstream sending one endless line grew the buffer
 * without bound before. Past either, the read fails
 * (UpstreamAnswerTooLarge, UpstreamAnswersOverBudget) and the upstream
 * request ends: the caller's bill (or hold) is not made. `afterChunk` runs
 * after each chunk's lines, awaited before the next chunk is read.
 */
export async function readJsonLines(body: AsyncIterable<Buffer>, each: (bytes: Buffer) => void, afterChunk?: () => Promise<void>): Promise<void> {
  const pending: Buffer[] = []
  let pendingBytes = 0
  /** Bytes of the line held taken from answerBudget */
  let taken = 0
  const giveBack = () => {
    answerBudget.used -= taken
    taken = 0
  }
  const lineGrows = (bytes: number) => {
    pendingBytes += bytes
    if (pendingBytes > answerLimits.bodyBytes) throw new UpstreamAnswerTooLarge('A line of the batch results', answerLimits.bodyBytes)
    if (pendingBytes > FREE_ANSWER_BYTES) {
      const more = pendingBytes - FREE_ANSWER_BYTES - taken
      if (answerBudget.used + more > answerLimits.inflightBytes) throw new UpstreamAnswersOverBudget()
      answerBudget.used += more
      taken += more
    }
  }
  try {
    await forEachChunk(body, (chunk) => {
      let start = 0
      for (;;) {
        const newline = chunk.indexOf(0x0a, start)
        if (newline < 0) {
          if (start < chunk.length) {
            lineGrows(chunk.length - start)
            pending.push(chunk.subarray(start))
          }
          return afterChunk?.()
        }
        const piece = chunk.subarray(start, newline)
        if (pending.length > 0) lineGrows(piece.length)
        each(pending.length > 0 ? Buffer.concat([...pending, piece]) : piece)
        pending.length = 0
        pendingBytes = 0
        giveBack()
        start = newline + 1
      }
    })
    if (pending.length > 0) each(Buffer.concat(pending))
  } finally {
    giveBack()
  }
}

/** A line's JSON, or undefined for a blank line or one that is not JSON (it adds nothing). */
export function parsedLine(bytes: Buffer): any {
  if (bytes.length === 0) return undefined
  try {
    return JSON.parse(bytes.toString('utf8'))
  } catch {
    return undefined
  }
}

function addLine(sums: OutputUsage, bytes: Buffer, once: BilledOnce) {
  const line = parsedLine(bytes)
  if (line === undefined || !once.admit(line?.custom_id)) return
  const response = line?.response
  const status = Number(response?.status_code)
  if (status >= 200 && status < 300) sums.requests++
  const usage = response?.body?.usage
  if (usage === null || typeof usage !== 'object') return
  const prompt = tokenCount(usage.prompt_tokens ?? usage.input_tokens)
  const completion = tokenCount(usage.completion_tokens ?? usage.output_tokens)
  sums.promptTokens += prompt
  sums.completionTokens += completion
  sums.cachedTokens += tokenCount(usage.prompt_tokens_details?.cached_tokens ?? usage.input_tokens_details?.cached_tokens)
  sums.reasoningTokens += tokenCount(usage.completion_tokens_details?.reasoning_tokens ?? usage.output_tokens_details?.reasoning_tokens)
  // What the same answer costs beyond its tokens when not batched: audio (gpt-audio's chat) and images, each line's
  // within its own whole, and a Responses answer's web searches (as decodeChatUsage and decodeResponsesUsage read them).
  sums.audioPromptTokens += Math.min(tokenCount(usage.prompt_tokens_details?.audio_tokens), prompt)
  sums.audioCompletionTokens += Math.min(tokenCount(usage.completion_tokens_details?.audio_tokens), completion)
  sums.imageCompletionTokens += Math.min(tokenCount(usage.completion_tokens_details?.image_tokens), completion)
  const output = response.body.output
  if (Array.isArray(output)) {
    let searches = 0
    for (const item of output) if (item?.type === 'web_search_call') searches++
    sums.webSearches += Math.min(searches, MAX_WEB_SEARCHES)
  } else if (searchedOnce(response.body)) {
    // A chat search model's answer (cited or not), or one citing the web: its one search, as chatUsageOfBody bills it
    sums.webSearches += 1
  }
}

function addResultLine(sums: OutputUsage, bytes: Buffer, once: BilledOnce) {
  const line = parsedLine(bytes)
  if (line === undefined || !once.admit(line?.custom_id)) return
  const result = line?.result
  if (result?.type !== 'succeeded') return
  sums.requests++
  // Its one-hour cache writes and web searches too, as /v1/messages bills them (they cost the five-minute write price and nothing).
  const usage = decodeAnthropicUsage(result.message?.usage)
  if (usage) addAnswerUsage(sums, usage)
}

/**
 * One answer's decoded usage added to the sums: every count its decoder
 * reports (Anthropic's cache writes, one-hour ones apart; Gemini's audio and
 * image modalities), its searches bounded as one answer's.
 */
function addAnswerUsage(sums: OutputUsage, usage: CanonicalUsage) {
  sums.promptTokens += tokenCount(usage.inputTokens)
  sums.completionTokens += tokenCount(usage.outputTokens)
  sums.cachedTokens += tokenCount(usage.cacheReadTokens)
  sums.cacheWriteTokens += tokenCount(usage.cacheWriteTokens)
  sums.cacheWrite1hTokens += tokenCount(usage.cacheWrite1hTokens)
  sums.reasoningTokens += tokenCount(usage.reasoningTokens)
  sums.audioPromptTokens += tokenCount(usage.audioInputTokens)
  sums.cachedAudioTokens += tokenCount(usage.cachedAudioTokens)
  sums.audioCompletionTokens += tokenCount(usage.audioOutputTokens)
  sums.imageCompletionTokens += tokenCount(usage.imageOutputTokens)
  sums.webSearches += Math.min(tokenCount(usage.webSearches), MAX_WEB_SEARCHES)
}

/**
 * A finished Gemini batch's inline answers (`inlinedResponses`: one
 * `{response | error, metadata}` per request, in the requests' order),
 * summed as generateContent bills one answer (geminiUsageOfBody: prompt,
 * cached, thinking tokens, audio and image modalities, grounding searches).
 * An `error` entry is billed nothing; entries past the batch's request count
 * (`lines`) are no request of it and are not billed either.
 */
export function sumGeminiInlined(responses: unknown[], lines: number): OutputUsage {
  const sums = noUsage()
  const count = Math.min(responses.length, lines)
  for (let i = 0; i < count; i++) addGeminiAnswer(sums, responses[i])
  return sums
}

/**
 * A Gemini batch's results file (JSONL, one `{key, response | error}` a
 * line), read as it streams (readJsonLines' bounds): each key of its input
 * file billed once (`once`), or, for a batch whose input had no key of its
 * own for each request (a key missing or repeated), its first `lines` lines
 * by their place (each of its requests answers one line, whatever its key:
 * a key repeated by ten requests was billed once before).
 */
export function sumGeminiResultsFile(body: AsyncIterable<Buffer>, once: BilledOnce): Promise<OutputUsage> {
  return sumKeyedLines(body, once, (sums, line) => addGeminiAnswer(sums, line))
}

/**
 * A Gemini results file's lines, each admitted once: by its `key` when the
 * input had one of its own for each request, else by its place (1-based);
 * `add` sees each admitted line with its place.
 */
function sumKeyedLines(body: AsyncIterable<Buffer>, once: BilledOnce, add: (sums: OutputUsage, line: any, place: number) => void): Promise<OutputUsage> {
  let place = 0
  return sumLines(body, (sums, bytes) => {
    const line = parsedLine(bytes)
    if (line === undefined) return
    place++
    const key = once.keyed && typeof line?.key === 'string' ? line.key : `\0line ${place}`
    if (once.admit(key)) add(sums, line, place)
  })
}

/**
 * An embedding batch's answers (gemini_embed_batch_input.ts): inline, in the
 * requests' order, or its results file's `{key, response | error}` lines
 * (each key once, as sumGeminiResultsFile), each answered request billed its
 * input tokens: the `tokenCount` Google reports (or a `usageMetadata`'s
 * `promptTokenCount`), else the count the gateway made of its text at the
 * batch's creation (`counts`, batch_input_tokens: by the request's place,
 * its key's place in a keyed file), the row then marked estimated, as
 * `:batchEmbedContents` is when Google reports none. An error is billed
 * nothing, and so is an entry past the batch's requests.
 */
export function sumGeminiEmbedInlined(responses: unknown[], lines: number, counts: Buffer | null): OutputUsage {
  const sums = noUsage()
  const count = Math.min(responses.length, lines)
  for (let i = 0; i < count; i++) addEmbedAnswer(sums, responses[i], counts, i)
  return sums
}

export function sumGeminiEmbedResultsFile(body: AsyncIterable<Buffer>, once: BilledOnce, counts: Buffer | null): Promise<OutputUsage> {
  return sumKeyedLines(body, once, (sums, line, place) => addEmbedAnswer(sums, line, counts, once.keyed ? once.admittedAt : place - 1))
}

/** Request `place`'s count in batch_input_tokens' `counts` (little-endian uint32 each; 0 past its end, or none kept) */
function countAt(counts: Buffer | null, place: number): number {
  if (counts === null || place < 0 || (place + 1) * 4 > counts.length) return 0
  return counts.readUInt32LE(place * 4)
}

/** One `{response, error}` entry of an embedding batch's output, request `place` of the batch */
function addEmbedAnswer(sums: OutputUsage, entry: any, counts: Buffer | null, place: number) {
  if (entry === null || typeof entry !== 'object' || entry.error != null) return
  const response = entry.response
  if (response === null || typeof response !== 'object') return
  sums.requests++
  // A count that cannot be believed (token_counts.ts), or more than the request's input can hold, is no count: the gateway's is billed instead.
  const counted = countAt(counts, place)
  const reported = reportedCount(response.tokenCount ?? response.usageMetadata?.promptTokenCount)
  if (reported !== null && (counts === null || reported <= embedInputBound(counted))) {
    sums.promptTokens += reported
    return
  }
  sums.promptTokens += counted
  sums.estimated = true
}

/**
 * The most tokens an embedding request's input may be billed, from the
 * gateway's count of its text: Google's tokenizer is not the gateway's
 * (some scripts and emoji take several times more tokens), and an input
 * holds a few non-text parts, but an embedding model reads at most some
 * thousands of tokens (gemini-embedding-001 2,048, truncating beyond). A
 * count past this is a broken or hostile report: believed up to a billion
 * tokens a request, 100,000 requests billed 10^14 tokens ($15M at $0.15
 * per 1M); bounded, 100,000 short ones bill at most 819M ($123).
 */
export function embedInputBound(counted: number): number {
  return Math.max(counted * 8, counted + 8192)
}

/** One `{response, error}` entry of a Gemini batch's output: its answer's usage, none for an error. */
function addGeminiAnswer(sums: OutputUsage, entry: any) {
  if (entry === null || typeof entry !== 'object' || entry.error != null) return
  const response = entry.response
  if (response === null || typeof response !== 'object') return
  sums.requests++
  const usage = geminiUsageOfBody(response)
  if (usage !== null) addAnswerUsage(sums, usage)
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
    cacheWriteTokens: Math.min(cap(sums.cacheWriteTokens), promptTokens - cachedTokens),
    reasoningTokens: Math.min(cap(sums.reasoningTokens), completionTokens),
    requestUnits: sums.requests,
    estimated: sums.estimated,
  }
}

/** The sums as costOf reads them (uncapped: every token is billed). */
export function billedUsage(sums: OutputUsage): TokenUsage {
  const cacheWriteTokens = Math.min(sums.cacheWriteTokens, Math.max(0, sums.promptTokens - sums.cachedTokens))
  const usage: TokenUsage = {
    promptTokens: sums.promptTokens,
    completionTokens: sums.completionTokens,
    totalTokens: sums.promptTokens + sums.completionTokens,
    cachedTokens: Math.min(sums.cachedTokens, sums.promptTokens),
    cacheWriteTokens,
    reasoningTokens: sums.reasoningTokens,
    estimated: false,
  }
  // Only when there are any: costOf's usual case looks at none of them.
  if (sums.cacheWrite1hTokens > 0) usage.cacheWrite1hTokens = Math.min(sums.cacheWrite1hTokens, cacheWriteTokens)
  if (sums.webSearches > 0) usage.webSearches = sums.webSearches
  if (sums.audioPromptTokens > 0) usage.audioPromptTokens = Math.min(sums.audioPromptTokens, sums.promptTokens)
  if (sums.cachedAudioTokens > 0) usage.cachedAudioTokens = Math.min(sums.cachedAudioTokens, usage.audioPromptTokens ?? 0, usage.cachedTokens)
  if (sums.audioCompletionTokens > 0) usage.audioCompletionTokens = Math.min(sums.audioCompletionTokens, sums.completionTokens)
  if (sums.imageCompletionTokens > 0) usage.imageCompletionTokens = Math.min(sums.imageCompletionTokens, sums.completionTokens)
  return usage
}
