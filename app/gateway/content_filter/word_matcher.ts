import { foldString, foldTable } from '#gateway/content_filter/case_fold'
import { PatternAutomaton, PatternError, parsePattern } from '#gateway/content_filter/pattern_automaton'

/**
 * The sensitive-word list compiled once (when the setting is saved or
 * loaded), matched in one pass per text: plain words and phrases through an
 * Aho-Corasick automaton, `re:` patterns through one DFA
 * (pattern_automaton.ts), both advanced by the same loop over the text's
 * UTF-16 units, which are case-folded by table as they are read (no copy of
 * the text). Words match anywhere, as substrings (new-api's rule).
 */

/** Entries in a list */
export const MAX_ENTRIES = 1_000
/** Characters in one entry (the `re:` prefix included) */
export const MAX_ENTRY_LENGTH = 200
/** `re:` entries in a list */
export const MAX_PATTERNS = 100
export const PATTERN_PREFIX = 're:'

export class WordListError extends Error {
  constructor(
    message: string,
    /** 1-based line of the list at fault (0: the list as a whole) */
    readonly line: number
  ) {
    super(message)
  }
}

/** The list as the operator wrote it: one entry per line, trimmed, blank lines and repeats (any case) dropped. */
export function entriesOf(text: string | string[]): string[] {
  const lines = Array.isArray(text) ? text : text.split(/\r?\n/)
  const seen = new Set<string>()
  const entries: string[] = []
  for (const raw of lines) {
    const entry = String(raw).trim()
    if (!entry) continue
    const key = entry.startsWith(PATTERN_PREFIX) ? entry : foldString(entry)
    if (seen.has(key)) continue
    seen.add(key)
    entries.push(entry)
  }
  return entries
}

export class WordMatcher {
  /** The entries as listed: what a refusal names */
  readonly entries: readonly string[]
  /** Aho-Corasick over the plain words: children by folded unit, failure links, entries ending at each node */
  #children: Array<Map<number, number>> = [new Map()]
  #fail: Int32Array = new Int32Array(1)
  #out: Array<number[] | null> = [null]
  /** The root's transitions by raw unit (folding included): most units of a text stay at the root, one lookup */
  #rootNext: Int32Array | null = null
  #patterns: PatternAutomaton | null = null

  private constructor(entries: string[]) {
    this.entries = entries
  }

  /** Compiles a list; throws WordListError naming the line and why. */
  static compile(list: string | string[]): WordMatcher {
    const entries = entriesOf(list)
    if (entries.length > MAX_ENTRIES) throw new WordListError(`${entries.length} entries; ${MAX_ENTRIES} at most`, 0)
    const matcher = new WordMatcher(entries)
    const words: Array<[string, number]> = []
    const patterns: string[] = []
    const patternIds: number[] = []
    entries.forEach((entry, id) => {
      const line = id + 1
      if (entry.length > MAX_ENTRY_LENGTH) throw new WordListError(`entry ${line} is ${entry.length} characters; ${MAX_ENTRY_LENGTH} at most`, line)
      if (entry.startsWith(PATTERN_PREFIX)) {
        const source = entry.slice(PATTERN_PREFIX.length)
        if (!source) throw new WordListError(`entry ${line}: re: needs a pattern`, line)
        try {
          parsePattern(source)
        } catch (error) {
          if (error instanceof PatternError) throw new WordListError(`entry ${line} (${entry}): ${error.message}`, line)
          throw error
        }
        patterns.push(source)
        patternIds.push(id)
      } else words.push([foldString(entry), id])
    })
    if (patterns.length > MAX_PATTERNS) throw new WordListError(`${patterns.length} re: patterns; ${MAX_PATTERNS} at most`, 0)
    if (words.length) matcher.#buildWords(words)
    if (patterns.length) {
      try {
        matcher.#patterns = PatternAutomaton.compile(patterns, patternIds)
      } catch (error) {
        if (error instanceof PatternError) throw new WordListError(error.message, 0)
        throw error
      }
    }
    return matcher
  }

  #buildWords(words: Array<[string, number]>) {
    const children = this.#children
    const out = this.#out
    for (const [word, id] of words) {
      let node = 0
      for (let i = 0; i < word.length; i++) {
        const unit = word.charCodeAt(i)
        let next = children[node].get(unit)
        if (next === undefined) {
          next = children.length
          children.push(new Map())
          out.push(null)
          children[node].set(unit, next)
        }
        node = next
      }
      ;(out[node] ??= []).push(id)
    }
    // Failure links breadth-first; each node also reports what its longest proper suffix reports.
    const fail = new Int32Array(children.length)
    const queue: number[] = [0]
    for (let head = 0; head < queue.length; head++) {
      const node = queue[head]
      for (const [unit, child] of children[node]) {
        let target = 0
        if (node !== 0) {
          let f = fail[node]
          while (f !== 0 && !children[f].has(unit)) f = fail[f]
          target = children[f].get(unit) ?? 0
        }
        fail[child] = target
        if (out[target]) out[child] = [...(out[child] ?? []), ...out[target]!]
        queue.push(child)
      }
    }
    this.#fail = fail
    const fold = foldTable()
    const rootNext = new Int32Array(0x10000)
    for (let unit = 0; unit < 0x10000; unit++) rootNext[unit] = children[0].get(fold[unit]) ?? 0
    this.#rootNext = rootNext
  }

  /**
   * Adds to `found` the entries that occur in `text` (ids into `entries`),
   * stopping once `found` holds `limit`. One pass, no allocation but `found`'s.
   */
  scan(text: string, found: Set<number>, limit: number): void {
    this.#run(text, null, found, limit, false)
  }

  /**
   * A stream's next piece of text, read from where the last piece left the
   * automata (`at`): a word split across pieces is found when its last unit
   * comes, and no piece is read twice. True when an entry completes in this
   * piece; the entries that complete at that unit are added to `found` (at
   * most `limit`), and the rest of the piece is not read.
   */
  feed(text: string, at: MatchState, found: Set<number>, limit: number): boolean {
    return this.#run(text, at, found, limit, true)
  }

  /** The one loop over a text's units; true when it stopped on a match (stopAtFirst or `found` full). */
  #run(text: string, at: MatchState | null, found: Set<number>, limit: number, stopAtFirst: boolean): boolean {
    const rootNext = this.#rootNext
    const patterns = this.#patterns
    const fold = foldTable()
    const children = this.#children
    const fail = this.#fail
    const out = this.#out
    const classOf = patterns?.classOf
    const classes = patterns?.classes ?? 0
    const next = patterns?.next
    const accepts = patterns?.accepts
    let node = at === null ? 0 : at.node
    let state = at === null ? 0 : at.state
    for (let i = 0; i < text.length; i++) {
      const unit = text.charCodeAt(i)
      let matched = false
      if (rootNext !== null) {
        if (node === 0) node = rootNext[unit]
        else {
          const folded = fold[unit]
          let child = children[node].get(folded)
          while (child === undefined && node !== 0) {
            node = fail[node]
            child = node === 0 ? undefined : children[node].get(folded)
          }
          node = child ?? rootNext[unit]
        }
        const ends = out[node]
        if (ends !== null) {
          if (report(ends, found, limit)) return true
          matched = true
        }
      }
      if (patterns !== null) {
        state = next![state * classes + classOf![unit]]
        const ends = accepts![state]
        if (ends !== null) {
          if (report(ends, found, limit)) return true
          matched = true
        }
      }
      if (matched && stopAtFirst) return true
    }
    if (at !== null) {
      at.node = node
      at.state = state
    }
    return false
  }
}

/** Where a stream's text left the automata: the word trie's node and the patterns' DFA state. */
export class MatchState {
  node = 0
  state = 0
}

/** Adds the entries; true once `found` is full. */
function report(ids: number[], found: Set<number>, limit: number): boolean {
  for (const id of ids) {
    found.add(id)
    if (found.size >= limit) return true
  }
  return false
}
