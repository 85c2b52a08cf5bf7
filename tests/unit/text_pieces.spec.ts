import { test } from '@japa/runner'
import { TextPieces } from '#gateway/relay/text_pieces'

test.group('TextPieces', () => {
  test('the text is every piece in order, whatever the count around the joins', ({ assert }) => {
    for (const count of [0, 1, 63, 64, 65, 128, 200, 4097]) {
      const pieces = new TextPieces()
      let expected = ''
      for (let i = 0; i < count; i++) {
        const piece = `p${i} `
        pieces.push(piece)
        expected += piece
      }
      assert.equal(pieces.text(), expected, `${count} pieces`)
      // Reading does not consume: more pieces go on after it.
      pieces.push('end')
      assert.equal(pieces.text(), `${expected}end`, `${count} pieces, then one more`)
    }
  })
})

test.group('TextPieces past its limit', () => {
  test('keeps the start of the text and counts the length of all of it', ({ assert }) => {
    const pieces = new TextPieces(100)
    for (let i = 0; i < 50; i++) pieces.push('0123456789')
    const kept = pieces.kept()
    // Whole pieces are kept until the limit is reached: the kept text is a prefix, never a torn piece.
    assert.equal(kept.text, '0123456789'.repeat(10))
    assert.equal(kept.chars, 500)
  })
})

test.group('countTokens of a kept start', () => {
  test('is scaled to the whole length', async ({ assert }) => {
    const { countTokens } = await import('#gateway/metering/tokenizer')
    const start = 'The quick brown fox jumps over the lazy dog. '.repeat(20)
    const whole = await countTokens(start)
    assert.equal(await countTokens(start, start.length), whole)
    assert.equal(await countTokens(start, start.length * 10), whole * 10)
  })
})
