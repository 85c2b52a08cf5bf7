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

test.group('TextPieces: since and truncate (a stream hold check reads what came since its last check, a cut takes back a chunk)', () => {
  test('since(n) is the text from character n, across pieces and joined blocks', ({ assert }) => {
    for (const count of [1, 63, 64, 65, 200]) {
      const pieces = new TextPieces()
      for (let i = 0; i < count; i++) pieces.push(`p${i} `)
      const whole = pieces.text()
      for (const from of [0, 1, 5, Math.floor(whole.length / 2), whole.length - 1, whole.length, whole.length + 3]) {
        assert.equal(pieces.since(from), whole.slice(from), `${count} pieces, from ${from}`)
      }
      assert.equal(pieces.chars, whole.length)
    }
  })

  test('truncate(n) forgets what came after character n; more pieces go on after it', ({ assert }) => {
    const pieces = new TextPieces()
    for (let i = 0; i < 100; i++) pieces.push(`p${i} `)
    const whole = pieces.text()
    pieces.truncate(200)
    assert.equal(pieces.text(), whole.slice(0, 200))
    assert.equal(pieces.chars, 200)
    assert.equal(pieces.since(190), whole.slice(190, 200))
    pieces.push('end')
    assert.equal(pieces.text(), `${whole.slice(0, 200)}end`)
    assert.deepEqual(pieces.kept(), { text: `${whole.slice(0, 200)}end`, chars: 203 })
  })

  test('past the limit, truncate keeps the kept start and the length', ({ assert }) => {
    const pieces = new TextPieces(100)
    for (let i = 0; i < 50; i++) pieces.push('0123456789')
    pieces.truncate(300)
    assert.deepEqual(pieces.kept(), { text: '0123456789'.repeat(10), chars: 300 })
    pieces.truncate(55)
    assert.deepEqual(pieces.kept(), { text: '0123456789'.repeat(5) + '01234', chars: 55 })
  })
})
