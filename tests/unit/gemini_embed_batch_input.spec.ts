import { test } from '@japa/runner'
import { EmbedTokenTally, embeddedText } from '#gateway/batches/gemini_embed_batch_input'
import { embedInputBound } from '#gateway/batches/batch_output'
import { countTokens } from '#gateway/metering/tokenizer'

/**
 * An embedding batch's requests counted at its creation: every request's
 * count kept in order, the event loop let go while 100,000 of them are
 * counted; what a request that is not text counts; the bound on a count
 * Google reports for one.
 */
test.group('Embedding batch token tally', () => {
  test('100,000 inline requests counted in order, the event loop let go between slices of them (it was one turn)', async ({ assert }) => {
    await countTokens('warm the encoder')
    const tally = new EmbedTokenTally()
    const texts = ['the quick brown fox jumps over the lazy dog', 'x', 'a third text']
    for (let i = 0; i < 100_000; i++) tally.add({ content: { parts: [{ text: texts[i % 3] }] } }, `k${i}`)
    let turns = 0
    let counting = true
    const turn = () => {
      if (!counting) return
      turns++
      setImmediate(turn)
    }
    setImmediate(turn)
    await tally.flush()
    counting = false
    assert.isAtLeast(turns, 50)
    const each = await Promise.all(texts.map((text) => countTokens(text)))
    const kept = tally.countsBuffer()
    assert.equal(kept.length, 400_000)
    assert.deepEqual([0, 1, 2, 99_999].map((i) => kept.readUInt32LE(i * 4)), [each[0], each[1], each[2], each[0]])
    assert.equal(tally.tokens, 33_334 * each[0] + 33_333 * (each[1] + each[2]))
  }).timeout(60_000)

  test('a request that is not text counts nothing (its image, a string content, no content); text parts joined', ({ assert }) => {
    assert.equal(embeddedText({ content: { parts: [{ inlineData: { mimeType: 'image/png', data: 'AAAA' } }] } }), '')
    assert.equal(embeddedText({ content: 'a string, not parts' }), '')
    assert.equal(embeddedText({}), '')
    assert.equal(embeddedText({ content: { parts: [{ text: 'a ' }, { text: 7 }, null, { text: 'b' }] } }), 'a b')
  })

  test("the most a request's input is billed: eight times the gateway's count, at least its count and 8,192", ({ assert }) => {
    assert.equal(embedInputBound(0), 8192)
    assert.equal(embedInputBound(1000), 9192)
    assert.equal(embedInputBound(2000), 16_000)
  })
})
