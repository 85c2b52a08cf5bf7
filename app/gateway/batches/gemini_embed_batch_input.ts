import { countTokens } from '#gateway/metering/tokenizer'
import { RequestKeys, type RequestTally } from '#gateway/batches/gemini_batch_input'

/**
 * An embedding batch's requests (`models/{m}:asyncBatchEmbedContent`, the
 * same `{batch: {input_config: {requests: {requests: [{request: {content,
 * taskType, title, outputDimensionality}, metadata}]}} | {file_name}}}` as
 * batchGenerateContent, read by gemini_batch_input.ts readGeminiBatch /
 * tallyInputFile), each request's input tokens counted as
 * `:batchEmbedContents` counts its inputs when Google reports none
 * (embeddings.ts: its `content.parts` texts, by the gateway's tokenizer).
 * The counts hold the batch (their sum at the input price) and are kept
 * (batch_input_tokens, migration 1047) to bill each answered request that
 * reports no `tokenCount` (batch_output.ts sumGeminiEmbeddings).
 */
/** Characters counted between two turns of the event loop (~50 ns each: ~3 ms) */
const YIELD_CHARS = 65_536
/** Texts counted between two turns, however short (~3 µs each) */
const YIELD_TEXTS = 1024

export class EmbedTokenTally implements RequestTally {
  requests = 0
  /** The counts' sum (each at most 2^32 - 1: a request's text is bounded by the body, 100 MB) */
  tokens = 0
  #keys = new RequestKeys()
  /** Each request's count, in order, little-endian uint32 (grown by doubling) */
  #counts = Buffer.alloc(4 * 64)
  /** Counts written to #counts */
  #counted = 0
  /** Texts added and not counted yet (flush) */
  #pending: string[] = []

  add(request: Record<string, any>, key: unknown) {
    this.requests++
    this.#keys.add(key)
    this.#pending.push(embeddedText(request))
  }

  /**
   * Counts the texts added since the last flush, in order. The tokenizer
   * yields to the event loop only inside a long text: 100,000 inline
   * requests of a sentence each were counted in one turn (0.56 s on a loaded
   * box; 20,000 of 4 KB, 4 s), so the loop is let go every YIELD_CHARS
   * characters or YIELD_TEXTS texts (a few ms of counting).
   */
  async flush() {
    const texts = this.#pending
    this.#pending = []
    let chars = 0
    let since = 0
    for (const text of texts) {
      if (chars >= YIELD_CHARS || since >= YIELD_TEXTS) {
        await new Promise((resolve) => setImmediate(resolve))
        chars = 0
        since = 0
      }
      chars += text.length
      since++
      const tokens = Math.min(await countTokens(text), 0xffffffff)
      this.#grow((this.#counted + 1) * 4)
      this.#counts.writeUInt32LE(tokens, this.#counted * 4)
      this.#counted++
      this.tokens += tokens
    }
  }

  #grow(bytes: number) {
    if (bytes <= this.#counts.length) return
    const grown = Buffer.alloc(Math.max(bytes, this.#counts.length * 2))
    this.#counts.copy(grown)
    this.#counts = grown
  }

  /** The counts as batch_input_tokens keeps them (call flush first) */
  countsBuffer(): Buffer {
    return Buffer.from(this.#counts.subarray(0, this.#counted * 4))
  }

  /** The keys' digests, or null (RequestKeys.digests) */
  customIds(): Buffer | null {
    return this.#keys.digests()
  }
}

/** What an embed request embeds, as embeddings.ts reads a Gemini request: its `content.parts` texts, joined */
export function embeddedText(request: Record<string, any>): string {
  const parts = request?.content?.parts
  if (!Array.isArray(parts)) return ''
  let text = ''
  for (const part of parts) if (typeof part?.text === 'string') text += part.text
  return text
}
