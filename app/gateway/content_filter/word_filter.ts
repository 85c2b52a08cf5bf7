import { GatewayError } from '#exceptions/gateway_error'
import { PROMPT_TEXTS, type TextVisitor } from '#gateway/content_filter/prompt_texts'
import { MatchState, WordMatcher } from '#gateway/content_filter/word_matcher'

/**
 * Sensitive-word filtering (new-api's CheckSensitiveWords; Portkey's and
 * LiteLLM's banned-words guardrail): an operator who sells access refuses
 * prompts that hold words they list, and may withhold answers that do (a
 * whole answer before it is sent; a streamed one stopped at the word:
 * StreamScreen). The setting lives in app_settings (`sensitive_words`); the
 * catalog compiles it when it loads and when a NOTIFY says it changed, so
 * the hot path reads no database: `catalog.wordFilter` is null when the
 * filter is off (one null check per request) and a compiled WordFilter
 * otherwise.
 */
export const WORD_FILTER_SETTING = 'sensitive_words'
export const SENSITIVE_WORDS_CODE = 'sensitive_words_detected'
/** Matched entries a refusal names at most */
const NAMED = 5

export interface WordFilterSettings {
  enabled: boolean
  /** One entry per item: a word or phrase, or `re:` and a pattern */
  words: string[]
  /** Also check the text of answers, whole or streamed (new-api's CheckSensitiveOnCompletion, StopOnSensitiveEnabled); prompts are always checked */
  checkCompletions: boolean
  /** Refusals do not say which words matched */
  hideMatches: boolean
}

export const WORD_FILTER_OFF: WordFilterSettings = { enabled: false, words: [], checkCompletions: false, hideMatches: false }

/** A stored value read leniently (a hand edit in psql): anything missing is off / empty. */
export function wordFilterSettingsOf(stored: unknown): WordFilterSettings {
  const value = (stored !== null && typeof stored === 'object' ? stored : {}) as Record<string, unknown>
  return {
    enabled: value.enabled === true,
    words: Array.isArray(value.words) ? value.words.filter((w): w is string => typeof w === 'string') : [],
    checkCompletions: value.checkCompletions === true,
    hideMatches: value.hideMatches === true,
  }
}

export class WordFilter {
  readonly #found = new Set<number>()
  readonly #limit: number
  readonly #visit: TextVisitor

  constructor(
    readonly matcher: WordMatcher,
    readonly checkCompletions: boolean,
    readonly hideMatches: boolean
  ) {
    this.#limit = hideMatches ? 1 : NAMED
    // One visitor for the filter's life: a request allocates nothing to be checked.
    this.#visit = (text) => {
      this.matcher.scan(text, this.#found, this.#limit)
      return this.#found.size >= this.#limit
    }
  }

  /** The filter for these settings; null when off or the list is empty. Throws WordListError on a bad list. */
  static of(settings: WordFilterSettings): WordFilter | null {
    if (!settings.enabled) return null
    const matcher = WordMatcher.compile(settings.words)
    if (matcher.entries.length === 0) return null
    return new WordFilter(matcher, settings.checkCompletions, settings.hideMatches)
  }

  /** Refuses (throws the 400) a prompt of a checked endpoint that holds a listed word; other endpoints pass. */
  screenPrompt(endpoint: string, body: Record<string, any>): void {
    const walk = PROMPT_TEXTS.get(endpoint)
    if (walk === undefined) return
    walk(body, this.#visit)
    const named = this.#takeFound()
    if (named !== null) throw this.#refusal('The request was refused: it contains', named)
  }

  /** The refusal for an answer's text that holds a listed word, or null. */
  screenCompletion(text: string): GatewayError | null {
    this.#visit(text)
    const named = this.#takeFound()
    return named === null ? null : this.#refusal('The answer was withheld: it contains', named)
  }

  /**
   * A streamed answer's screen (null when answers are not checked): made once
   * per stream, so a stream pays this one flag check and nothing per chunk
   * when the check is off.
   */
  streamScreen(): StreamScreen | null {
    return this.checkCompletions ? new StreamScreen(this) : null
  }

  /** A stream's next piece of text, from where its last piece left the automata: true once a listed entry completes. */
  feedStream(text: string, at: MatchState): boolean {
    const hit = this.matcher.feed(text, at, this.#found, this.#limit)
    // The entries are not kept: the stream ends on the first one, and its row says why (the code).
    this.#found.clear()
    return hit
  }

  /** The entries found (and the set emptied for the next request; matching is synchronous). */
  #takeFound(): string[] | null {
    if (this.#found.size === 0) return null
    const named = [...this.#found].sort((a, b) => a - b).map((id) => this.matcher.entries[id])
    this.#found.clear()
    return named
  }

  #refusal(opening: string, named: string[]): GatewayError {
    const message = this.hideMatches
      ? `${opening} words this service does not allow`
      : `${opening} sensitive words: ${named.join(', ')}`
    return new GatewayError(400, SENSITIVE_WORDS_CODE, message)
  }
}

/**
 * The answer check of one streamed answer: its text, piece by piece as the
 * upstream sends it, through the filter's automata from where the previous
 * piece left them (a word split across events or chunks is found when its
 * last character comes). Nothing is re-read and nothing of the answer kept:
 * two numbers per stream.
 */
export class StreamScreen {
  readonly #at = new MatchState()

  constructor(readonly filter: WordFilter) {}

  /** True once the answer's text so far holds a listed word or pattern. */
  push(text: string): boolean {
    return this.filter.feedStream(text, this.#at)
  }
}
