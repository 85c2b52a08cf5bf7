import { test } from '@japa/runner'
import { WordListError, WordMatcher } from '#gateway/content_filter/word_matcher'
import { PROMPT_TEXTS } from '#gateway/content_filter/prompt_texts'

/** The entries a matcher finds in a text, as listed. */
function found(matcher: WordMatcher, text: string, limit = 10): string[] {
  const ids = new Set<number>()
  matcher.scan(text, ids, limit)
  return [...ids].sort((a, b) => a - b).map((id) => matcher.entries[id])
}

function refused(list: string[]): string {
  try {
    WordMatcher.compile(list)
  } catch (error) {
    if (error instanceof WordListError) return error.message
    throw error
  }
  throw new Error(`accepted: ${JSON.stringify(list)}`)
}

test.group('Sensitive words: the matcher', () => {
  test('plain words and phrases match anywhere, in any case, overlapping ones all found', ({ assert }) => {
    const matcher = WordMatcher.compile(['he', 'she', 'his', 'hers', 'Free Credits', 'ÄPFEL', '  ', 'HE'])
    assert.deepEqual(matcher.entries, ['he', 'she', 'his', 'hers', 'Free Credits', 'ÄPFEL'], 'blank lines and repeats (any case) dropped')
    assert.deepEqual(found(matcher, 'USHERS'), ['he', 'she', 'hers'])
    assert.deepEqual(found(matcher, 'get FREE credits now'), ['Free Credits'])
    assert.deepEqual(found(matcher, 'grüne äpfel'), ['ÄPFEL'])
    assert.deepEqual(found(matcher, 'free  credits'), [], 'a phrase is matched as written')
    assert.deepEqual(found(matcher, 'nothing at all'), [])
    assert.deepEqual(found(matcher, 'h'), [])
    assert.deepEqual(found(matcher, 'ushers', 1).length, 1, 'stops at the limit')
  })

  test('re: patterns: classes, escapes, groups, alternation, counted and open repeats, case-insensitive', ({ assert }) => {
    const matcher = WordMatcher.compile(['re:\\d{3}-\\d{2}-\\d{4}', 're:free\\s+credits?', 're:(?:buy|sell) (cheap|fake) [a-z]+s', 're:[^a-z0-9 ]{3}', 'plain'])
    assert.deepEqual(found(matcher, 'my ssn is 123-45-6789.'), ['re:\\d{3}-\\d{2}-\\d{4}'])
    assert.deepEqual(found(matcher, 'FREE    CREDIT'), ['re:free\\s+credits?'])
    assert.deepEqual(found(matcher, 'we Sell FAKE watches'), ['re:(?:buy|sell) (cheap|fake) [a-z]+s'])
    assert.deepEqual(found(matcher, 'Ab!?#'), ['re:[^a-z0-9 ]{3}'])
    assert.deepEqual(found(matcher, 'ABC abc 12-34'), [], '[^a-z] refuses upper case letters too, as /[^a-z]/i does')
    assert.deepEqual(found(matcher, 'a plain and 999-99-9999 text'), ['re:\\d{3}-\\d{2}-\\d{4}', 'plain'])
  })

  test('patterns a linear-time automaton cannot do, or that are malformed, are refused with the reason and the entry', ({ assert }) => {
    assert.include(refused(['ok', 're:(a)\\1']), 'entry 2 (re:(a)\\1): back-references')
    assert.include(refused(['re:(?=a)b']), 'lookarounds')
    assert.include(refused(['re:^start']), 'anchors')
    assert.include(refused(['re:\\bword\\b']), 'word boundaries')
    assert.include(refused(['re:(abc']), 'not closed')
    assert.include(refused(['re:a{1,1000}']), 'a count above 100')
    assert.include(refused(['re:*a']), 'repeats nothing')
    assert.include(refused(['re:']), 'needs a pattern')
    assert.include(refused(['x'.repeat(201)]), '200 at most')
    assert.include(refused(Array.from({ length: 1001 }, (_, i) => `w${i}`)), '1000 at most')
  })

  test('a pattern whose automaton would blow up is refused at compile time, not met by a request', ({ assert }) => {
    // The n-th character from the end is an "a": 2^n deterministic states.
    assert.include(refused(['re:(a|b)*a(a|b){15}']), 'too large an automaton')
    // Classic backtracking bombs are harmless here: their automata are small, matching stays linear.
    const matcher = WordMatcher.compile(['re:(x+x+)+y', 're:(a|a)*b', 're:(\\w+\\s?)*!'])
    const hostile = 'x'.repeat(200_000) + 'a'.repeat(200_000) + 'word '.repeat(40_000)
    const started = performance.now()
    assert.deepEqual(found(matcher, hostile), [])
    const ms = performance.now() - started
    assert.isBelow(ms, 2_000, `linear: ${ms} ms for ${hostile.length} units`)
  })

  test('micro-benchmark (for the record): a 100 KB prompt against 980 words and 20 patterns', ({ assert }) => {
    const words = Array.from({ length: 980 }, (_, i) => `forbidden${i.toString(36)}phrase`)
    const patterns = Array.from({ length: 20 }, (_, i) => `re:secret${i}\\s*code\\d{2,6}`)
    const matcher = WordMatcher.compile([...words, ...patterns])
    const chunk = 'The quick brown fox jumps over the lazy dog; function foo(bar) { return bar * 2 } // ünïcödé 文字 '
    const prompt = chunk.repeat(Math.ceil(100_000 / chunk.length)).slice(0, 100_000)
    const ids = new Set<number>()
    for (let i = 0; i < 20; i++) matcher.scan(prompt, ids, 5)
    const runs = 200
    const started = process.hrtime.bigint()
    for (let i = 0; i < runs; i++) matcher.scan(prompt, ids, 5)
    const perScanUs = Number(process.hrtime.bigint() - started) / 1000 / runs
    console.log(`word matcher: ${perScanUs.toFixed(0)} µs per 100 KB prompt (${((100_000 / perScanUs) | 0)} units/µs), 980 words + 20 patterns`)
    assert.equal(ids.size, 0)
  })

  test('prompt texts: every place a prompt holds text is read, image bytes are not', ({ assert }) => {
    const texts = (endpoint: string, body: Record<string, any>) => {
      const seen: string[] = []
      PROMPT_TEXTS.get(endpoint)!(body, (t) => (seen.push(t), false))
      return seen
    }
    assert.deepEqual(
      texts('chat.completions', {
        messages: [
          { role: 'system', content: 'sys' },
          { role: 'user', content: [{ type: 'text', text: 'part' }, { type: 'image_url', image_url: { url: 'data:image/png;base64,QUJD' } }] },
          { role: 'tool', tool_call_id: 'c1', content: 'tool result' },
        ],
      }),
      ['sys', 'part', 'tool result']
    )
    assert.deepEqual(
      texts('responses', {
        instructions: 'instr',
        input: [
          { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'in' }, { type: 'input_image', image_url: 'data:x' }] },
          { type: 'function_call_output', call_id: 'c', output: 'fn out' },
        ],
      }),
      ['instr', 'in', 'fn out']
    )
    assert.deepEqual(texts('responses', { input: 'plain' }), ['plain'])
    assert.deepEqual(
      texts('messages', {
        system: [{ type: 'text', text: 'sys block' }],
        messages: [
          { role: 'user', content: [{ type: 'image', source: { type: 'base64', data: 'QUJD' } }, { type: 'tool_result', tool_use_id: 't', content: [{ type: 'text', text: 'result' }] }] },
          { role: 'user', content: 'str' },
        ],
      }),
      ['sys block', 'result', 'str']
    )
    assert.deepEqual(
      texts('gemini.generateContent', {
        systemInstruction: { parts: [{ text: 'gsys' }] },
        contents: [{ role: 'user', parts: [{ text: 'g1' }, { inlineData: { data: 'QUJD' } }, { functionResponse: { name: 'f', response: { result: 'fr' } } }] }],
      }),
      ['gsys', 'g1', 'fr']
    )
    assert.deepEqual(texts('completions', { prompt: ['p1', [1, 2]], suffix: 'sfx' }), ['p1', 'sfx'])
    assert.deepEqual(texts('embeddings', { input: ['e1', 'e2'] }), ['e1', 'e2'])
    assert.deepEqual(texts('gemini.batchEmbedContents', { requests: [{ content: { parts: [{ text: 'b1' }] } }] }), ['b1'])
    assert.isUndefined(PROMPT_TEXTS.get('moderations'), 'moderation input is what it is for')
  })
})
