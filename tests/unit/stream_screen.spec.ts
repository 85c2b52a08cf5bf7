import type { ServerResponse } from 'node:http'
import { test } from '@japa/runner'
import { MatchState, WordMatcher } from '#gateway/content_filter/word_matcher'
import { WordFilter } from '#gateway/content_filter/word_filter'
import { dialectOf } from '#gateway/dialects/registry'
import { ClientStream } from '#gateway/relay/client_stream'
import { relayPassThroughStream } from '#gateway/relay/pass_through_stream'

/**
 * The sensitive-word check of streamed answers: the matcher's automata carry
 * their state from one piece of a stream's text to the next, so a word or a
 * pattern split across events (or chunks) is found when its last character
 * comes, without reading any piece twice.
 */

/** The index of the piece in which an entry completes (feeding piece by piece), or -1. */
function completesIn(matcher: WordMatcher, pieces: string[]): number {
  const at = new MatchState()
  const found = new Set<number>()
  for (let i = 0; i < pieces.length; i++) if (matcher.feed(pieces[i], at, found, 5)) return i
  return -1
}

test.group('Sensitive words: streamed text', () => {
  test('a word or pattern split across pieces completes in the piece holding its last character', ({ assert }) => {
    const matcher = WordMatcher.compile(['secretsauce', 're:free\\s+credits?', 're:\\d{3}-\\d{2}-\\d{4}'])
    assert.equal(completesIn(matcher, ['the Secr', 'etSa', 'uce is', ' here']), 2)
    assert.equal(completesIn(matcher, ['s', 'e', 'c', 'r', 'e', 't', 's', 'a', 'u', 'c', 'e']), 10)
    assert.equal(completesIn(matcher, ['get FREE ', '   ', 'cred', 'it now']), 3)
    assert.equal(completesIn(matcher, ['ssn 123-4', '5-678', '9.']), 2)
    assert.equal(completesIn(matcher, ['secret', ' sauce', 'free', 'credit', '123-45-678']), -1, 'nothing completes')
    // A failed partial match does not hide a word that starts inside it (Aho-Corasick's failure links across pieces)
    assert.equal(completesIn(matcher, ['secretsecr', 'etsau', 'ce']), 2)
  })

  test('the filter gives a screen per stream only when answers are checked', ({ assert }) => {
    const matcher = WordMatcher.compile(['casino'])
    assert.isNull(new WordFilter(matcher, false, false).streamScreen(), 'prompts only: no screen, no per-chunk work')
    const screen = new WordFilter(matcher, true, false).streamScreen()!
    assert.isFalse(screen.push('the cas'))
    assert.isTrue(screen.push('ino opens'))
    // Two streams do not share state
    const filter = new WordFilter(matcher, true, false)
    const a = filter.streamScreen()!
    const b = filter.streamScreen()!
    assert.isFalse(a.push('cas'))
    assert.isFalse(b.push('ino'))
    assert.isTrue(a.push('ino'))
  })

  test('micro-benchmark (for the record): a streamed answer through the pass-through relay, with and without the answer check', async ({ assert }) => {
    const words = Array.from({ length: 980 }, (_, i) => `forbidden${i.toString(36)}phrase`)
    const patterns = Array.from({ length: 20 }, (_, i) => `re:secret${i}\\s*code\\d{2,6}`)
    const matcher = WordMatcher.compile([...words, ...patterns])
    const filter = new WordFilter(matcher, true, false)

    // A 100 KB answer in deltas of ~16 characters (a token or four), 8 events per upstream chunk.
    const piece = 'The quick brown fox jumps over the lazy dog; function foo(bar) { return bar * 2 } // ünïcödé 文字 '
    const answer = piece.repeat(Math.ceil(100_000 / piece.length)).slice(0, 100_000)
    const events: string[] = []
    for (let i = 0; i < answer.length; i += 16) {
      events.push(`data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', created: 1, model: 'up', choices: [{ index: 0, delta: { content: answer.slice(i, i + 16) }, finish_reason: null }] })}\n\n`)
    }
    events.push(`data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"up","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n`)
    events.push(`data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"up","choices":[],"usage":{"prompt_tokens":7,"completion_tokens":20000,"total_tokens":20007}}\n\n`)
    events.push('data: [DONE]\n\n')
    const chunks: Buffer[] = []
    for (let i = 0; i < events.length; i += 8) chunks.push(Buffer.from(events.slice(i, i + 8).join('')))

    const run = async (checked: boolean) => {
      const res = { destroyed: false, writableEnded: false, writableFinished: false, writeHead() {}, write: () => true, end() { this.writableEnded = this.writableFinished = true } }
      const stream = new ClientStream(res as unknown as ServerResponse, {}, () => {})
      const upstream = (async function* () {
        yield* chunks
      })()
      const outcome = await relayPassThroughStream(upstream, dialectOf('openai_chat'), {
        encoder: { model: 'm', includeUsage: true },
        clientModel: null,
        stream,
        screen: checked ? filter.streamScreen() : null,
      })
      assert.isFalse(outcome.withheld)
    }
    const time = async (checked: boolean) => {
      for (let i = 0; i < 5; i++) await run(checked)
      const runs = 30
      const started = process.hrtime.bigint()
      for (let i = 0; i < runs; i++) await run(checked)
      return Number(process.hrtime.bigint() - started) / 1000 / runs
    }
    const plain = await time(false)
    const checked = await time(true)
    const perKb = (checked - plain) / 100
    const perEvent = ((checked - plain) / (events.length - 3)).toFixed(2)
    console.log(
      `streamed answer check: 100 KB in ${events.length - 3} deltas, relayed in ${plain.toFixed(0)} µs unchecked, ${checked.toFixed(0)} µs checked: ` +
        `+${perKb.toFixed(1)} µs per KB of answer, +${perEvent} µs per event (980 words + 20 patterns)`
    )
    // The matcher alone, on the same pieces
    const at = new MatchState()
    const found = new Set<number>()
    const started = process.hrtime.bigint()
    for (let r = 0; r < 30; r++) for (let i = 0; i < answer.length; i += 16) matcher.feed(answer.slice(i, i + 16), at, found, 5)
    const matcherUs = Number(process.hrtime.bigint() - started) / 1000 / 30
    console.log(`  of which the matcher: ${(matcherUs / 100).toFixed(1)} µs per KB fed in 16-character pieces`)
    assert.equal(found.size, 0)
  })
})
