/**
 * Token counting for when the upstream reports no usage (a stream cut short,
 * a provider that omits it) and for the gateway's own count_tokens. Uses the
 * o200k_base BPE (GPT-4o family) from gpt-tokenizer, loaded on first use
 * (about a second of parsing, once per process, and ~17 MB of heap).
 *
 * BPE merging is quadratic in the length of one pre-token, and a run of text
 * with no word boundary (40,000 emoji, a long base64 string) is one pre-token:
 * counted whole it held the event loop for seconds to minutes. So the text is
 * cut into pieces first, before a whitespace where it can be (the count of
 * ordinary text is unchanged), and inside a run every MAX_RUN characters (a
 * few tokens more than an exact count, on text no one reads anyway). Long
 * texts are counted in slices between which the event loop runs; beyond
 * MAX_EXACT characters the count is extrapolated from SAMPLES slices spread
 * evenly over the text, so the work per text is bounded whatever its size.
 */
type EncoderCount = (text: string) => number

/** Longest run of one kind (word-ish or whitespace) encoded as one piece */
const MAX_RUN = 64
/** Longest piece handed to the encoder */
const MAX_PIECE = 2048
/** Characters counted between two turns of the event loop */
const SLICE = 4096
/** Characters counted exactly; longer texts are estimated from samples */
const MAX_EXACT = 131_072
/** Slices (of SLICE characters) sampled from a text longer than MAX_EXACT */
const SAMPLES = MAX_EXACT / SLICE

let encoderCount: EncoderCount | undefined
let loading: Promise<EncoderCount> | undefined

async function load(): Promise<EncoderCount> {
  if (encoderCount) return encoderCount
  loading ??= import('gpt-tokenizer/encoding/o200k_base').then((mod) => {
    encoderCount = mod.countTokens as EncoderCount
    return encoderCount
  })
  return loading
}

function isSpace(code: number): boolean {
  return code === 0x20 || code === 0x0a || code === 0x0d || code === 0x09
}

function isLowSurrogate(code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff
}

/**
 * Counts text[start, end) piece by piece; returns where it stopped (a piece
 * boundary at or after `end`, so slices never cut a piece) and the tokens.
 */
function countRange(count: EncoderCount, text: string, start: number, end: number): { stop: number; tokens: number } {
  let tokens = 0
  let pieceStart = start
  let runStart = start
  let runIsSpace = isSpace(text.charCodeAt(start))
  let lastSpace = -1
  let i = start
  for (; i < text.length; i++) {
    const code = text.charCodeAt(i)
    const space = isSpace(code)
    if (space !== runIsSpace) {
      runIsSpace = space
      runStart = i
    }
    if (space) lastSpace = i
    if (isLowSurrogate(code)) continue
    let cut = -1
    if (i - runStart >= MAX_RUN) cut = i
    else if (i - pieceStart >= MAX_PIECE) cut = lastSpace > pieceStart ? lastSpace : i
    if (cut > pieceStart) {
      tokens += count(text.slice(pieceStart, cut))
      pieceStart = cut
      if (cut === i) runStart = i
      if (pieceStart >= end) break
    }
  }
  if (i >= text.length && pieceStart < text.length) {
    tokens += count(text.slice(pieceStart))
    pieceStart = text.length
  }
  return { stop: pieceStart, tokens }
}

const nextTurn = () => new Promise((resolve) => setImmediate(resolve))

/**
 * Tokens of a short text at once, without leaving the event loop: null when
 * the encoder is not loaded yet or the text is longer than one slice (then
 * countTokens). What a stream's hold check (stream_hold.ts) counts between
 * two chunks: usually a few hundred characters.
 */
export function countTokensNow(text: string): number | null {
  if (!text) return 0
  if (!encoderCount || text.length > SLICE) return null
  return countRange(encoderCount, text, 0, text.length).tokens
}

/**
 * Tokens of a text. Never holds the event loop for more than one slice.
 * `ofChars`: the length of the whole text when `text` is only its start (a
 * stream's kept completion, relay/text_pieces.ts): the count is scaled to it.
 */
export async function countTokens(text: string, ofChars = text.length): Promise<number> {
  if (!text) return 0
  const count = await load()
  if (ofChars > text.length) return Math.ceil(((await countTokens(text)) * ofChars) / text.length)
  if (text.length > MAX_EXACT) return estimateFromSamples(count, text)
  let tokens = 0
  let at = 0
  while (at < text.length) {
    if (at > 0) await nextTurn()
    const range = countRange(count, text, at, at + SLICE)
    tokens += range.tokens
    at = range.stop
  }
  return tokens
}

/** Tokens per character over evenly spread slices, times the length. */
async function estimateFromSamples(count: EncoderCount, text: string): Promise<number> {
  const stride = Math.floor(text.length / SAMPLES)
  let tokens = 0
  let chars = 0
  for (let sample = 0; sample < SAMPLES; sample++) {
    if (sample > 0) await nextTurn()
    const slice = text.slice(sample * stride, sample * stride + SLICE)
    tokens += countRange(count, slice, 0, slice.length).tokens
    chars += slice.length
  }
  return Math.ceil((tokens * text.length) / chars)
}

/** Tokens of a chat prompt: content text of every message plus the per-message framing OpenAI bills. */
export async function countChatPromptTokens(messages: unknown): Promise<number> {
  if (!Array.isArray(messages)) return 0
  let total = 3
  for (const message of messages) {
    total += 3
    if (!message || typeof message !== 'object') continue
    const m = message as Record<string, unknown>
    total += await countTokens(textOf(m.content))
    if (typeof m.name === 'string') total += (await countTokens(m.name)) + 1
    if (Array.isArray(m.tool_calls)) {
      for (const call of m.tool_calls as any[]) {
        total += (await countTokens(String(call?.function?.name ?? ''))) + (await countTokens(String(call?.function?.arguments ?? '')))
      }
    }
  }
  return total
}

/** Text of a content field: a string, or the text parts of an array of parts. */
export function textOf(content: unknown): string {
  if (typeof content === 'string') return content
  if (!Array.isArray(content)) return ''
  let text = ''
  for (const part of content) {
    if (part && typeof part === 'object' && typeof (part as any).text === 'string') {
      text += (part as any).text
    }
  }
  return text
}
