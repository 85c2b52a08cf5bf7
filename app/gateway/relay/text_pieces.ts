/** Pieces joined into one flat string every so often (a rope keeps a node per piece for the stream's life). */
const PIECES_BEFORE_JOIN = 64

/**
 * A stream's completion text, kept piece by piece while the stream lasts, to
 * count it should the stream end without the upstream's usage. Shared by both
 * stream relays.
 */
export class TextPieces {
  #pieces: string[] = []

  push(piece: string) {
    this.#pieces.push(piece)
    if (this.#pieces.length > PIECES_BEFORE_JOIN) this.#pieces = [this.#pieces.join('')]
  }

  text(): string {
    return this.#pieces.join('')
  }
}
