/** Pieces joined into one flat block every so often (a rope keeps a node per piece for the stream's life). */
const PIECES_BEFORE_JOIN = 64

/**
 * Characters of a stream's completion text kept for counting: what the
 * tokenizer counts exactly (tokenizer.ts MAX_EXACT; past it, it samples), so
 * a longer text is counted from its start and scaled to its length. Past it
 * only the length is kept on: an upstream that streams without usage and
 * without end (a broken or hostile one, until the total timeout) held its
 * whole text, gigabytes, until the join at the end threw "Invalid string
 * length" and the row was a 500 with nothing charged. (A translated stream
 * keeps its text to the end: at most this much per stream.)
 */
export const KEPT_TEXT_CHARS = 131_072

/** A stream's completion text as kept: `text` is its first characters, `chars` how many it had in all. */
export interface KeptText {
  text: string
  chars: number
}

/**
 * A stream's completion text, kept piece by piece while the stream lasts, to
 * count it should the stream end without the upstream's usage. Shared by both
 * stream relays.
 *
 * Every 64 pieces are joined into a block of their own; the blocks are
 * joined once, when the text is read. (Joining the new pieces onto all the
 * text so far, as this did before, copied the whole text again every 64
 * pieces: a translated 64,000-token answer spent ~200 ms of the event loop
 * on it, 256,000 tokens 4.6 s.) Past `limit` characters, pieces are only
 * counted (`chars`), not kept: the tokenizer scales the kept text's count
 * (tokenizer.ts, countTokens' `ofChars`), as it samples any long text anyway.
 */
export class TextPieces {
  #pieces: string[] = []
  #blocks: string[] | null = null
  #kept = 0
  #chars = 0

  constructor(private limit = KEPT_TEXT_CHARS) {}

  push(piece: string) {
    this.#chars += piece.length
    if (this.#kept >= this.limit) return
    this.#kept += piece.length
    this.#pieces.push(piece)
    if (this.#pieces.length >= PIECES_BEFORE_JOIN) {
      ;(this.#blocks ??= []).push(this.#pieces.join(''))
      this.#pieces = []
    }
  }

  /** Characters pushed in all (kept or not) */
  get chars(): number {
    return this.#chars
  }

  /** Characters kept (the text() length) */
  get keptChars(): number {
    return this.#kept
  }

  /**
   * The kept text from character `from` to the end: the blocks and pieces
   * before it are not joined (a stream's hold check reads what came since
   * its last check: stream_hold.ts).
   */
  since(from: number): string {
    if (from >= this.#kept) return ''
    const parts: string[] = []
    let at = this.#kept
    for (let i = this.#pieces.length - 1; i >= 0 && at > from; i--) {
      parts.push(this.#pieces[i])
      at -= this.#pieces[i].length
    }
    if (this.#blocks !== null) {
      for (let i = this.#blocks.length - 1; i >= 0 && at > from; i--) {
        parts.push(this.#blocks[i])
        at -= this.#blocks[i].length
      }
    }
    const text = parts.length === 1 ? parts[0] : parts.reverse().join('')
    return at === from ? text : text.slice(from - at)
  }

  /**
   * Forgets what was pushed past character `chars` (a stream cut before its
   * last chunk went out: the text billed is what the client got).
   */
  truncate(chars: number) {
    if (chars >= this.#chars) return
    if (chars < this.#kept) {
      const text = this.text().slice(0, chars)
      this.#blocks = null
      this.#pieces = [text]
      this.#kept = chars
    }
    this.#chars = chars
  }

  /** The kept text (every piece while under the limit) */
  text(): string {
    const rest = this.#pieces.join('')
    return this.#blocks === null ? rest : this.#blocks.join('') + rest
  }

  /** The kept text and the length of all that was pushed */
  kept(): KeptText {
    return { text: this.text(), chars: this.#chars }
  }
}
