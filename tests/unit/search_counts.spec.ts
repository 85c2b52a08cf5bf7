import { test } from '@japa/runner'
import type { CanonicalEvent } from '#gateway/dialects/canonical'
import { ResponsesStreamDecoder } from '#gateway/dialects/openai_responses/stream_decoder'
import { ChatStreamDecoder } from '#gateway/dialects/openai_chat/stream_decoder'
import { GeminiStreamDecoder } from '#gateway/dialects/gemini/stream_decoder'
import { openAiResponses } from '#gateway/dialects/openai_responses/index'
import { DEFAULT_WEB_SEARCH_HOLD, webSearchHold } from '#gateway/metering/reservation'
import { MAX_WEB_SEARCHES } from '#gateway/metering/token_counts'

/**
 * Web searches counted as a stream shows them (a cut stream bills those that
 * ran), never twice when the final usage states them; and held for every
 * tool that may search.
 */
const usages = (events: CanonicalEvent[]) => events.filter((e) => e.type === 'usage') as Array<Extract<CanonicalEvent, { type: 'usage' }>>

const usage = { input_tokens: 10, output_tokens: 5, total_tokens: 15 }
const searchDone = (n: number) => ({
  event: 'response.output_item.done',
  data: JSON.stringify({ type: 'response.output_item.done', output_index: n, item: { type: 'web_search_call', id: `ws_${n}`, status: 'completed' } }),
})
const completed = (output: unknown[], counts: unknown = usage) => ({
  event: 'response.completed',
  data: JSON.stringify({ type: 'response.completed', response: { id: 'r', status: 'completed', output, usage: counts } }),
})
const wsItem = (n: number) => ({ type: 'web_search_call', id: `ws_${n}`, status: 'completed' })

test.group('Web search counts in streams', () => {
  test('Responses (translated): each web_search_call done is a partial usage; response.completed states the count, not added to it', ({ assert }) => {
    const decoder = new ResponsesStreamDecoder()
    const first = usages(decoder.push(searchDone(0)))
    assert.deepEqual(first.map((e) => [e.usage.webSearches, e.partial]), [[1, true]])
    assert.deepEqual(usages(decoder.push(searchDone(1))).map((e) => e.usage.webSearches), [2])
    const final = usages(decoder.push(completed([wsItem(0), wsItem(1)])))
    assert.deepEqual(final.map((e) => [e.usage.webSearches, e.usage.inputTokens, e.partial]), [[2, 10, undefined]])

    // A terminal event whose usage cannot be believed: no usage event (the partial one is not made final next to the stop)
    const other = new ResponsesStreamDecoder()
    other.push(searchDone(0))
    assert.deepEqual(usages(other.push(completed([wsItem(0)], { input_tokens: -1, output_tokens: 5 }))), [])
  })

  test('Responses (passed through): only web_search_call items and terminal events are parsed; partial until the terminal one', ({ assert }) => {
    const rules = openAiResponses.passThrough
    assert.isTrue(rules.carriesUsage(searchDone(0)))
    const message = { event: 'response.output_item.done', data: JSON.stringify({ type: 'response.output_item.done', item: { type: 'message', content: [{ type: 'output_text', text: 'say "web_search_call"' }] } }) }
    assert.isFalse(rules.carriesUsage(message), 'a message quoting the name is not parsed')
    assert.isFalse(rules.carriesUsage({ event: 'response.output_text.delta', data: '{"delta":"x"}' }))
    const one = rules.readUsage(JSON.parse(searchDone(0).data), null)!
    assert.equal(one.webSearches, 1)
    assert.isFalse(rules.isFinal!(JSON.parse(searchDone(0).data)))
    const final = rules.readUsage(JSON.parse(completed([wsItem(0)]).data), one)!
    assert.include(final, { webSearches: 1, inputTokens: 10 })
    // A terminal event listing fewer items than were shown: the searches shown stand
    const two = rules.readUsage(JSON.parse(searchDone(1).data), one)!
    assert.equal(rules.readUsage(JSON.parse(completed([]).data), two)!.webSearches, 2)
  })

  test('Responses: a web_search_call item done again (a repeated event) is not another search, translated or passed through', ({ assert }) => {
    const decoder = new ResponsesStreamDecoder()
    decoder.push(searchDone(0))
    assert.deepEqual(usages(decoder.push(searchDone(0))), [], 'the same item again: no new usage')
    for (let i = 0; i < 50; i++) decoder.push(searchDone(0))
    assert.deepEqual(usages(decoder.push(searchDone(1))).map((e) => e.usage.webSearches), [2])
    const final = usages(decoder.push(completed([wsItem(0), wsItem(1)])))
    assert.deepEqual(final.map((e) => e.usage.webSearches), [2])

    const rules = openAiResponses.passThrough
    let known = rules.readUsage(JSON.parse(searchDone(0).data), null)
    for (let i = 0; i < 50; i++) known = rules.readUsage(JSON.parse(searchDone(0).data), known)
    assert.equal(known!.webSearches, 1)
    known = rules.readUsage(JSON.parse(searchDone(1).data), known)
    assert.equal(rules.readUsage(JSON.parse(completed([wsItem(0), wsItem(1)]).data), known)!.webSearches, 2)
    // An item without an id is told apart by its output_index
    const anonymous = (n: number) => ({ type: 'response.output_item.done', output_index: n, item: { type: 'web_search_call', status: 'completed' } })
    let unnamed = rules.readUsage(anonymous(3), null)
    unnamed = rules.readUsage(anonymous(3), unnamed)
    unnamed = rules.readUsage(anonymous(4), unnamed)
    assert.equal(unnamed!.webSearches, 2)
  })

  test('chat: a chunk citing the web is one partial search; the usage chunk carries it, once', ({ assert }) => {
    const decoder = new ChatStreamDecoder()
    const chunk = (body: Record<string, unknown>) => ({ data: JSON.stringify({ id: 'c', model: 'm', ...body }) })
    const citation = { type: 'url_citation', url_citation: { url: 'https://x' } }
    const cited = usages(decoder.push(chunk({ choices: [{ index: 0, delta: { content: 'a', annotations: [citation] } }] })))
    assert.deepEqual(cited.map((e) => [e.usage.webSearches, e.partial]), [[1, true]])
    assert.deepEqual(usages(decoder.push(chunk({ choices: [{ index: 0, delta: { annotations: [citation] } }] }))), [], 'one search per answer')
    decoder.push(chunk({ choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] }))
    const final = usages(decoder.push(chunk({ choices: [], usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 } })))
    assert.deepEqual(final.map((e) => [e.usage.webSearches, e.usage.inputTokens, e.partial]), [[1, 3, undefined]])
  })

  test("chat: a search model's stream is its one search from its first chunk, cited or not; another model's, only cited", ({ assert }) => {
    const chunk = (model: string, body: Record<string, unknown>) => ({ data: JSON.stringify({ id: 'c', model, ...body }) })
    const search = new ChatStreamDecoder()
    const first = usages(search.push(chunk('gpt-5-search-api-2025-10-14', { choices: [{ index: 0, delta: { role: 'assistant', content: '' } }] })))
    assert.deepEqual(first.map((e) => [e.usage.webSearches, e.partial]), [[1, true]])
    assert.deepEqual(usages(search.push(chunk('gpt-5-search-api-2025-10-14', { choices: [{ index: 0, delta: { content: 'a' } }] }))), [])
    const final = usages(search.push(chunk('gpt-5-search-api-2025-10-14', { choices: [], usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 } })))
    assert.deepEqual(final.map((e) => e.usage.webSearches), [1])
    const plain = new ChatStreamDecoder()
    plain.push(chunk('gpt-4o', { choices: [{ index: 0, delta: { role: 'assistant', content: 'a' } }] }))
    const plainFinal = usages(plain.push(chunk('gpt-4o', { choices: [], usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 } })))
    assert.deepEqual(plainFinal.map((e) => e.usage.webSearches), [undefined])
  })

  test('Gemini: grounding counted as Google bills it (per answer; per query from Gemini 3), the most any chunk showed', ({ assert }) => {
    const chunk = (version: string, grounded: boolean, last: boolean) => ({
      data: JSON.stringify({
        candidates: [
          {
            content: { role: 'model', parts: [{ text: 'x' }] },
            ...(last ? { finishReason: 'STOP' } : {}),
            ...(grounded ? { groundingMetadata: { webSearchQueries: ['a', 'b'], groundingChunks: [{ web: { uri: 'https://x' } }] } } : {}),
          },
        ],
        usageMetadata: { promptTokenCount: 4, candidatesTokenCount: 1, totalTokenCount: 5 },
        modelVersion: version,
      }),
    })
    for (const [version, searches] of [['gemini-2.5-flash', 1], ['gemini-3-pro-preview', 2], ['gemini-3.1-flash', 2]] as const) {
      const decoder = new GeminiStreamDecoder()
      assert.isUndefined(usages(decoder.push(chunk(version, false, false)))[0].usage.webSearches)
      assert.equal(usages(decoder.push(chunk(version, true, false)))[0].usage.webSearches, searches, version)
      // The last chunk repeats the grounding: not added again
      assert.equal(usages(decoder.push(chunk(version, true, true)))[0].usage.webSearches, searches, version)
    }
  })

  test('an absurd search count (a broken upstream listing thousands) is no more than the bill takes (MAX_WEB_SEARCHES), in every count the stream hold reads', ({ assert }) => {
    const queries = Array.from({ length: 5000 }, (_, i) => `q${i}`)
    const chunk = {
      data: JSON.stringify({
        candidates: [{ content: { role: 'model', parts: [{ text: 'x' }] }, groundingMetadata: { webSearchQueries: queries } }],
        modelVersion: 'gemini-3-pro-preview',
      }),
    }
    const gemini = usages(new GeminiStreamDecoder().push(chunk))
    assert.equal(gemini[0].usage.webSearches, MAX_WEB_SEARCHES)
    const items = Array.from({ length: 5000 }, (_, i) => wsItem(i))
    const responses = usages(new ResponsesStreamDecoder().push(completed(items)))
    assert.equal(responses[0].usage.webSearches, MAX_WEB_SEARCHES)
  })

  test('holds: Gemini Google Search tools and chat web_search_options hold searches; function tools none', ({ assert }) => {
    assert.equal(webSearchHold({ tools: [{ googleSearch: {} }] }), DEFAULT_WEB_SEARCH_HOLD)
    assert.equal(webSearchHold({ tools: [{ google_search_retrieval: { dynamic_retrieval_config: {} } }, { functionDeclarations: [] }] }), DEFAULT_WEB_SEARCH_HOLD)
    assert.equal(webSearchHold({ web_search_options: {}, messages: [] }), 1)
    // A chat search model named holds its call's one search, with web_search_options or without (not twice)
    assert.equal(webSearchHold({ model: 'gpt-4o-mini-search-preview', messages: [] }), 1)
    assert.equal(webSearchHold({ model: 'openai/gpt-5-search-api-2025-10-14', web_search_options: {}, messages: [] }), 1)
    assert.equal(webSearchHold({ model: 'gpt-4o', messages: [] }), 0)
    assert.equal(webSearchHold({ tools: [{ type: 'function', function: { name: 'f' } }, null, 'x'] }), 0)
    assert.equal(webSearchHold({ tools: [{ type: 'web_search_20250305', name: 'web_search', max_uses: 3 }] }), 3)
  })
})
