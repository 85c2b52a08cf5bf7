import { test } from '@japa/runner'
import { encodeAnthropicResponse } from '#gateway/dialects/anthropic_messages/response'
import { MAX_CITATIONS } from '#gateway/dialects/canonical'
import { decodeChatResponse } from '#gateway/dialects/openai_chat/response'
import { decodeGeminiResponse } from '#gateway/dialects/gemini/response'

/**
 * Citations from a hostile upstream, as they are translated: spans nested so
 * that every block the Anthropic encoder cuts is covered by most citations,
 * and Google's byte offsets into a long non-ASCII text.
 */
test.group('Citations against hostile spans', () => {
  test('256 nested spans with 8 KB URLs: the Anthropic answer stays near the size of its citations', ({ assert }) => {
    const text = 'x'.repeat(1000)
    const annotations = Array.from({ length: MAX_CITATIONS }, (_, i) => ({
      type: 'url_citation',
      url_citation: { url: `https://example.com/${i}/${'p'.repeat(8000)}`, title: 't'.repeat(1000), content: 'c'.repeat(1000), start_index: i, end_index: 1000 },
    }))
    const response = decodeChatResponse({ id: 'c1', model: 'm', choices: [{ index: 0, message: { role: 'assistant', content: text, annotations }, finish_reason: 'stop' }] } as any)
    const started = performance.now()
    const encoded = encodeAnthropicResponse(response, 'm')
    const size = JSON.stringify(encoded).length
    const ms = performance.now() - started
    // The citations themselves are about 2.6 MB: their copies are bounded, not 256 x 257 / 2 of them (about 330 MB)
    assert.isBelow(size, 20 * 1024 * 1024, `${size} characters in ${Math.round(ms)} ms`)
    // Every citation is still on the answer, on the block where its span begins
    const urls = new Set(encoded.content.flatMap((block: any) => (block.citations ?? []).map((c: any) => c.url)))
    assert.equal(urls.size, MAX_CITATIONS)
    const first = encoded.content.find((block: any) => block.citations?.some((c: any) => c.url.startsWith('https://example.com/255/')))
    assert.equal((encoded.content as any[]).slice(0, encoded.content.indexOf(first!)).reduce((n, b: any) => n + b.text.length, 0), 255)
    assert.equal((encoded.content as any[]).map((b: any) => b.text).join(''), text)
  })

  test('few overlapping citations still cite every block they cover', ({ assert }) => {
    const annotations = [
      { type: 'url_citation', url_citation: { url: 'https://a.example', title: 'A', start_index: 0, end_index: 10 } },
      { type: 'url_citation', url_citation: { url: 'https://b.example', title: 'B', start_index: 5, end_index: 15 } },
    ]
    const response = decodeChatResponse({ id: 'c1', model: 'm', choices: [{ index: 0, message: { role: 'assistant', content: 'a'.repeat(20), annotations }, finish_reason: 'stop' }] } as any)
    const blocks = encodeAnthropicResponse(response, 'm').content as any[]
    assert.deepEqual(
      blocks.map((b) => [b.text.length, (b.citations ?? []).map((c: any) => c.url)]),
      [
        [5, ['https://a.example']],
        [5, ['https://a.example', 'https://b.example']],
        [5, ['https://b.example']],
        [5, []],
      ]
    )
  })

  test("Google's byte offsets into 4 MB of non-ASCII text: spans found in one pass, never inside a character", ({ assert }) => {
    // 1.4 M characters of 3 bytes and 4-byte emoji (two UTF-16 units each)
    const text = '漢😀'.repeat(700_000)
    const bytes = Buffer.byteLength(text)
    const supports = Array.from({ length: MAX_CITATIONS }, (_, i) => ({
      // ends near the text's end; the first one cut inside an emoji (1 byte into its 4)
      segment: { startIndex: i === 0 ? 4 : bytes - 7 * (i + 1), endIndex: bytes - 7 * i - (i === 0 ? 2 : 0) },
      groundingChunkIndices: [0],
    }))
    const body = {
      candidates: [
        {
          content: { role: 'model', parts: [{ text }] },
          finishReason: 'STOP',
          groundingMetadata: { groundingChunks: [{ web: { uri: 'https://example.com', title: 'E' } }], groundingSupports: supports },
        },
      ],
    }
    const started = performance.now()
    const response = decodeGeminiResponse(body as any)
    const ms = performance.now() - started
    assert.isBelow(ms, 1000, `${Math.round(ms)} ms`)
    const citations = (response.content[0] as any).citations
    assert.lengthOf(citations, MAX_CITATIONS)
    // Byte 4 is inside the emoji after '漢' (bytes 3 to 6): the span begins after it, never between its two units
    assert.equal(citations[0].start, 3)
    assert.equal(citations[0].end, text.length)
    // Each 7-byte '漢😀' is 3 UTF-16 units
    assert.equal(citations[1].start, text.length - 3 * 2)
    assert.equal(citations[1].end, text.length - 3)
  })
})
