import type { StreamScreen } from '#gateway/content_filter/word_filter'
import type { CanonicalEvent } from '#gateway/dialects/canonical'
import type { TextPieces } from '#gateway/relay/text_pieces'

/**
 * The sensitive-word check of a streamed answer, over the canonical events a
 * stream decoder made of one upstream event (or chunk): the text a
 * non-streamed answer is checked on (responseText: text, reasoning, a tool
 * call's name and arguments), fed to the stream's screen piece by piece.
 * Each piece is also kept in `text`, the stream's completion text for the
 * count; the piece that completes a word too (the upstream made it: its
 * tokens are billed). Returns the index of the event whose text completed a
 * listed word, or -1.
 */
export function screenedAt(screen: StreamScreen, events: readonly CanonicalEvent[], text: TextPieces | null): number {
  for (let i = 0; i < events.length; i++) {
    const event = events[i]
    let piece: string
    if (event.type === 'delta') piece = event.value
    else if (event.type === 'block_start' && event.block.type === 'tool_call') piece = event.block.name
    else continue
    text?.push(piece)
    if (screen.push(piece)) return i
  }
  return -1
}
