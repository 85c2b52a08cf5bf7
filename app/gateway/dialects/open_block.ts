import type { BlockInfo, CanonicalEvent } from '#gateway/dialects/canonical'

/**
 * Block bookkeeping for stream formats that have no block boundaries of
 * their own (OpenAI chat, Gemini): at most one block is open; blocks are
 * numbered in order; a delta of another kind closes the open block first.
 */
export class OpenBlock {
  #open: { index: number; kind: BlockInfo['type']; refusal: boolean } | null = null
  #next = 0

  /** The index the next block will get */
  get next() {
    return this.#next
  }

  /** The open block's index when it is an answer's text (no refusal), else null */
  get openText(): number | null {
    return this.#open?.kind === 'text' && !this.#open.refusal ? this.#open.index : null
  }

  /** The open block's index when it is of `kind` (a refusal or not); otherwise closes it and starts one. */
  ensure(out: CanonicalEvent[], kind: 'text' | 'reasoning', refusal = false): number {
    if (this.#open?.kind === kind && this.#open.refusal === refusal) return this.#open.index
    return this.open(out, refusal ? { type: 'text', refusal } : ({ type: kind } as BlockInfo))
  }

  /** Closes the open block and starts `block`, returning its index. */
  open(out: CanonicalEvent[], block: BlockInfo): number {
    this.close(out)
    const index = this.#next++
    this.#open = { index, kind: block.type, refusal: block.type === 'text' && !!block.refusal }
    out.push({ type: 'block_start', index, block })
    return index
  }

  close(out: CanonicalEvent[]) {
    if (this.#open) out.push({ type: 'block_stop', index: this.#open.index })
    this.#open = null
  }
}
