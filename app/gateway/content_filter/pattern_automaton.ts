import { foldTable } from '#gateway/content_filter/case_fold'

/**
 * The `re:` entries of the sensitive-word list, compiled into one
 * deterministic automaton (DFA) when the list is saved or loaded, so that
 * matching is one table lookup per UTF-16 code unit whatever the patterns
 * are: no backtracking, so no pattern can make a prompt take more than
 * linear time. A pattern set whose automaton would be too large is refused
 * when it is saved (PatternError), never discovered by a request.
 *
 * The syntax is the part of JavaScript's that such an automaton can do:
 * characters and escapes (\d \w \s and their negations, \t \n \r \f \v \0
 * \xHH \uHHHH, an escaped punctuation mark), `.` (any unit but a newline),
 * classes `[a-z0-9_]` and `[^...]`, groups `(...)` and `(?:...)`,
 * alternation `|`, quantifiers `* + ? {n} {n,} {n,m}` (lazy forms accepted:
 * whether a match exists does not depend on laziness). Refused with a reason:
 * anchors `^ $ \b \B`, lookarounds, back-references, named groups, `\p{..}`.
 * Matching is case-insensitive (by the same fold as the plain words) and
 * finds a pattern anywhere in a text.
 */

export class PatternError extends Error {}

/** Largest count in `{n,m}` */
export const MAX_REPEAT = 100
/** NFA states one pattern may compile to (counted repetition copies its body) */
const MAX_NFA_STATES_PER_PATTERN = 2_000
/** DFA states of all the patterns together */
export const MAX_DFA_STATES = 5_000
/** DFA table cells (states x character classes): about 4 bytes each */
const MAX_DFA_CELLS = 2_000_000

type Node =
  | { k: 'set'; ranges: number[] }
  | { k: 'cat'; items: Node[] }
  | { k: 'alt'; items: Node[] }
  | { k: 'rep'; node: Node; min: number; max: number }
  | { k: 'empty' }

const DIGIT = [0x30, 0x39]
const WORD = [0x30, 0x39, 0x41, 0x5a, 0x5f, 0x5f, 0x61, 0x7a]
const SPACE = [0x09, 0x0d, 0x20, 0x20, 0xa0, 0xa0, 0x1680, 0x1680, 0x2000, 0x200a, 0x2028, 0x2029, 0x202f, 0x202f, 0x205f, 0x205f, 0x3000, 0x3000, 0xfeff, 0xfeff]

/** Sorted, merged [lo, hi] pairs (inclusive). */
function normalise(ranges: number[]): number[] {
  const pairs: Array<[number, number]> = []
  for (let i = 0; i < ranges.length; i += 2) pairs.push([ranges[i], ranges[i + 1]])
  pairs.sort((a, b) => a[0] - b[0])
  const out: number[] = []
  for (const [lo, hi] of pairs) {
    if (out.length && lo <= out[out.length - 1] + 1) out[out.length - 1] = Math.max(out[out.length - 1], hi)
    else out.push(lo, hi)
  }
  return out
}

function complement(ranges: number[]): number[] {
  const sorted = normalise(ranges)
  const out: number[] = []
  let next = 0
  for (let i = 0; i < sorted.length; i += 2) {
    if (sorted[i] > next) out.push(next, sorted[i] - 1)
    next = sorted[i + 1] + 1
  }
  if (next <= 0xffff) out.push(next, 0xffff)
  return out
}

/** The folded units of a set of raw units: what a folded text unit must be to match it. */
function foldRanges(ranges: number[]): number[] {
  const fold = foldTable()
  const marks = new Uint8Array(0x10000)
  for (let i = 0; i < ranges.length; i += 2) for (let u = ranges[i]; u <= ranges[i + 1]; u++) marks[fold[u]] = 1
  const out: number[] = []
  for (let u = 0; u < 0x10000; u++) {
    if (!marks[u]) continue
    const lo = u
    while (u + 1 < 0x10000 && marks[u + 1]) u++
    out.push(lo, u)
  }
  return out
}

/** Recursive-descent parser of one pattern into the tree above. */
class Parser {
  pos = 0
  constructor(private src: string) {}

  parse(): Node {
    const node = this.alternation()
    if (this.pos < this.src.length) throw new PatternError(`unexpected '${this.src[this.pos]}' at position ${this.pos + 1}`)
    return node
  }

  alternation(): Node {
    const items = [this.sequence()]
    while (this.src[this.pos] === '|') {
      this.pos++
      items.push(this.sequence())
    }
    return items.length === 1 ? items[0] : { k: 'alt', items }
  }

  sequence(): Node {
    const items: Node[] = []
    while (this.pos < this.src.length && this.src[this.pos] !== '|' && this.src[this.pos] !== ')') {
      items.push(this.quantified(this.atom()))
    }
    if (items.length === 0) return { k: 'empty' }
    return items.length === 1 ? items[0] : { k: 'cat', items }
  }

  quantified(node: Node): Node {
    for (;;) {
      const c = this.src[this.pos]
      let min: number
      let max: number
      if (c === '*') [min, max] = [0, Infinity]
      else if (c === '+') [min, max] = [1, Infinity]
      else if (c === '?') [min, max] = [0, 1]
      else if (c === '{') {
        const m = /^\{(\d+)(,(\d*))?\}/.exec(this.src.slice(this.pos))
        if (!m) throw new PatternError(`'{' at position ${this.pos + 1} starts no {n}, {n,} or {n,m} (write \\{ for the character)`)
        min = Number(m[1])
        max = m[2] === undefined ? min : m[3] === '' ? Infinity : Number(m[3])
        if (min > MAX_REPEAT || (max !== Infinity && max > MAX_REPEAT)) throw new PatternError(`a count above ${MAX_REPEAT} in ${m[0]}`)
        if (max < min) throw new PatternError(`${m[0]}: the numbers are out of order`)
        this.pos += m[0].length - 1
      } else return node
      this.pos++
      if (this.src[this.pos] === '?') this.pos++
      node = { k: 'rep', node, min, max }
    }
  }

  atom(): Node {
    const c = this.src[this.pos]
    const at = this.pos + 1
    switch (c) {
      case '(': {
        this.pos++
        if (this.src[this.pos] === '?') {
          if (this.src[this.pos + 1] !== ':') throw new PatternError(`lookarounds and named groups are not supported (position ${at}); use (?:...) or (...)`)
          this.pos += 2
        }
        const inner = this.alternation()
        if (this.src[this.pos] !== ')') throw new PatternError(`a group opened at position ${at} is not closed`)
        this.pos++
        return inner
      }
      case ')':
        throw new PatternError(`unmatched ')' at position ${at}`)
      case '[':
        return this.characterClass()
      case '.':
        this.pos++
        return { k: 'set', ranges: foldRanges(complement([0x0a, 0x0a, 0x0d, 0x0d, 0x2028, 0x2029])) }
      case '^':
      case '$':
        throw new PatternError(`anchors (${c}) are not supported: a pattern matches anywhere in the text`)
      case '*':
      case '+':
      case '?':
      case '{':
        throw new PatternError(`'${c}' at position ${at} repeats nothing`)
      case '\\': {
        this.pos++
        return { k: 'set', ranges: foldRanges(this.escape(false)) }
      }
      default:
        this.pos++
        return { k: 'set', ranges: foldRanges([c.charCodeAt(0), c.charCodeAt(0)]) }
    }
  }

  /** After a backslash: the raw units it stands for. */
  escape(inClass: boolean): number[] {
    const c = this.src[this.pos]
    if (c === undefined) throw new PatternError('the pattern ends with a lone backslash')
    this.pos++
    switch (c) {
      case 'd':
        return DIGIT
      case 'D':
        return complement(DIGIT)
      case 'w':
        return WORD
      case 'W':
        return complement(WORD)
      case 's':
        return SPACE
      case 'S':
        return complement(SPACE)
      case 't':
        return [9, 9]
      case 'n':
        return [10, 10]
      case 'v':
        return [11, 11]
      case 'f':
        return [12, 12]
      case 'r':
        return [13, 13]
      case '0':
        return [0, 0]
      case 'x':
      case 'u': {
        const digits = c === 'x' ? 2 : 4
        const hex = this.src.slice(this.pos, this.pos + digits)
        if (!new RegExp(`^[0-9a-fA-F]{${digits}}$`).test(hex)) throw new PatternError(`\\${c} needs ${digits} hex digits`)
        this.pos += digits
        const unit = Number.parseInt(hex, 16)
        return [unit, unit]
      }
      case 'b':
        if (inClass) return [8, 8]
        throw new PatternError('word boundaries (\\b) are not supported')
      case 'B':
        throw new PatternError('\\B is not supported')
      case 'p':
      case 'P':
      case 'k':
        throw new PatternError(`\\${c} is not supported`)
      default:
        if (/[1-9]/.test(c)) throw new PatternError('back-references (\\1...) are not supported')
        if (/[A-Za-z]/.test(c)) throw new PatternError(`unknown escape \\${c}`)
        return [c.charCodeAt(0), c.charCodeAt(0)]
    }
  }

  characterClass(): Node {
    const at = this.pos + 1
    this.pos++
    let negated = false
    if (this.src[this.pos] === '^') {
      negated = true
      this.pos++
    }
    const raw: number[] = []
    let first = true
    while (this.pos < this.src.length && (this.src[this.pos] !== ']' || first)) {
      first = false
      const lo = this.classUnit()
      if (this.src[this.pos] === '-' && this.src[this.pos + 1] !== ']' && this.pos + 1 < this.src.length && lo.length === 2 && lo[0] === lo[1]) {
        this.pos++
        const hi = this.classUnit()
        if (hi.length !== 2 || hi[0] !== hi[1]) throw new PatternError(`a range at position ${at} ends in a class escape`)
        if (hi[0] < lo[0]) throw new PatternError(`a range at position ${at} is out of order`)
        raw.push(lo[0], hi[0])
      } else raw.push(...lo)
    }
    if (this.src[this.pos] !== ']') throw new PatternError(`a class opened at position ${at} is not closed`)
    this.pos++
    // Negated after folding: [^a] must refuse 'A' too, as JavaScript's /[^a]/i does.
    const folded = foldRanges(raw)
    return { k: 'set', ranges: negated ? complement(folded) : folded }
  }

  classUnit(): number[] {
    const c = this.src[this.pos]
    if (c === '\\') {
      this.pos++
      return this.escape(true)
    }
    this.pos++
    return [c.charCodeAt(0), c.charCodeAt(0)]
  }
}

/** Thompson NFA: set states consume one folded unit, split states branch, match states name their pattern. */
class Nfa {
  kind: number[] = [] // 0 set, 1 split, 2 match
  ranges: Array<number[] | null> = []
  outs: number[][] = []
  entry: number[] = []

  add(kind: number, ranges: number[] | null, outs: number[], entry = -1): number {
    this.kind.push(kind)
    this.ranges.push(ranges)
    this.outs.push(outs)
    this.entry.push(entry)
    return this.kind.length - 1
  }

  /** Builds `node` leading to state `next`; returns its start. */
  build(node: Node, next: number, budget: { left: number }): number {
    if (--budget.left < 0) throw new PatternError(`too large once its repetitions are expanded (over ${MAX_NFA_STATES_PER_PATTERN} states)`)
    switch (node.k) {
      case 'empty':
        return next
      case 'set':
        return this.add(0, node.ranges, [next])
      case 'cat': {
        let start = next
        for (let i = node.items.length - 1; i >= 0; i--) start = this.build(node.items[i], start, budget)
        return start
      }
      case 'alt':
        return this.add(1, null, node.items.map((item) => this.build(item, next, budget)))
      case 'rep': {
        let start: number
        if (node.max === Infinity) {
          const loop = this.add(1, null, [])
          this.outs[loop].push(this.build(node.node, loop, budget), next)
          start = loop
        } else {
          start = next
          for (let i = 0; i < node.max - node.min; i++) start = this.add(1, null, [this.build(node.node, start, budget), next])
        }
        for (let i = 0; i < node.min; i++) start = this.build(node.node, start, budget)
        return start
      }
    }
  }
}

function inRanges(ranges: number[], unit: number): boolean {
  for (let i = 0; i < ranges.length; i += 2) {
    if (unit < ranges[i]) return false
    if (unit <= ranges[i + 1]) return true
  }
  return false
}

/** Checks one pattern (its syntax and size) without building the automaton of the whole list. */
export function parsePattern(source: string): void {
  new Nfa().build(new Parser(source).parse(), 0, { left: MAX_NFA_STATES_PER_PATTERN })
}

/**
 * The compiled automaton of all the patterns. `classOf` maps a raw text unit
 * (folding included) to its character class; `next` is the transition table
 * (state * classes + class); `accepts[state]` lists the patterns that have
 * just matched, or is null.
 */
export class PatternAutomaton {
  private constructor(
    readonly classOf: Uint16Array,
    readonly classes: number,
    readonly next: Int32Array,
    readonly accepts: Array<number[] | null>,
    readonly states: number
  ) {}

  /** `patterns[i]` is reported as entry `ids[i]`. Throws PatternError naming the pattern at fault. */
  static compile(patterns: string[], ids: number[]): PatternAutomaton {
    const nfa = new Nfa()
    const starts: number[] = []
    patterns.forEach((source, i) => {
      try {
        const tree = new Parser(source).parse()
        const match = nfa.add(2, null, [], ids[i])
        starts.push(nfa.build(tree, match, { left: MAX_NFA_STATES_PER_PATTERN }))
      } catch (error) {
        if (error instanceof PatternError) throw new PatternError(`re:${source}: ${error.message}`)
        throw error
      }
    })
    const root = nfa.add(1, null, starts)

    // Character classes: the units between consecutive range boundaries behave alike in every set state.
    const bounds = new Set<number>([0])
    for (const ranges of nfa.ranges) {
      if (ranges) for (let i = 0; i < ranges.length; i += 2) bounds.add(ranges[i]).add(ranges[i + 1] + 1)
    }
    const cuts = [...bounds].filter((b) => b <= 0xffff).sort((a, b) => a - b)
    const classOfFolded = new Uint16Array(0x10000)
    for (let c = 0; c < cuts.length; c++) classOfFolded.fill(c, cuts[c], c + 1 < cuts.length ? cuts[c + 1] : 0x10000)
    const fold = foldTable()
    const classOf = new Uint16Array(0x10000)
    for (let u = 0; u < 0x10000; u++) classOf[u] = classOfFolded[fold[u]]
    const classes = cuts.length

    const closure = (seeds: Iterable<number>): number[] => {
      const seen = new Set<number>()
      const stack = [...seeds]
      while (stack.length) {
        const s = stack.pop()!
        if (seen.has(s)) continue
        seen.add(s)
        if (nfa.kind[s] === 1) for (const o of nfa.outs[s]) stack.push(o)
      }
      return [...seen].sort((a, b) => a - b)
    }
    const rootClosure = closure([root])
    const sets: number[][] = []
    const ids_ = new Map<string, number>()
    const accepts: Array<number[] | null> = []
    const stateOf = (set: number[]): number => {
      const key = set.join(',')
      let id = ids_.get(key)
      if (id === undefined) {
        id = sets.length
        if (id >= MAX_DFA_STATES || (id + 1) * classes > MAX_DFA_CELLS) {
          throw new PatternError(
            `the re: patterns together need too large an automaton (over ${MAX_DFA_STATES} states): simplify them (fewer wildcards and counted repeats)`
          )
        }
        ids_.set(key, id)
        sets.push(set)
        const matched = set.filter((s) => nfa.kind[s] === 2).map((s) => nfa.entry[s])
        accepts.push(matched.length ? matched : null)
      }
      return id
    }
    stateOf(rootClosure)
    let table = new Int32Array(Math.max(classes * 64, classes))
    for (let d = 0; d < sets.length; d++) {
      for (let c = 0; c < classes; c++) {
        const unit = cuts[c]
        // Unanchored: a match may start at any unit, so the start states are always there.
        const moved: number[] = rootClosure.slice()
        for (const s of sets[d]) if (nfa.kind[s] === 0 && inRanges(nfa.ranges[s]!, unit)) moved.push(nfa.outs[s][0])
        const target = stateOf(closure(moved))
        if ((d + 1) * classes > table.length) {
          const bigger = new Int32Array(table.length * 2)
          bigger.set(table)
          table = bigger
        }
        table[d * classes + c] = target
      }
    }
    return new PatternAutomaton(classOf, classes, table.slice(0, sets.length * classes), accepts, sets.length)
  }
}
