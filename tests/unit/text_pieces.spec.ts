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
