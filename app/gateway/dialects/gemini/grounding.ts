import { boundedCitation, citationSpan, MAX_CITATIONS, type UrlCitation } from '#gateway/dialects/canonical'

/** A candidate's `groundingMetadata` (Google Search grounding), as far as citations read it */
export interface GeminiGrounding {
  webSearchQueries?: string[]
  groundingChunks?: Array<{ web?: { uri?: string; title?: string } }>
  groundingSupports?: Array<{ segment?: { partIndex?: number; startIndex?: number; endIndex?: number; text?: string }; groundingChunkIndices?: number[] }>
}

/** A page cited from one of the candidate's parts (its index in `content.parts`) */
export interface GroundedCitation {
  part: number
  citation: UrlCitation
}

/**
 * The web pages a grounded answer cites: each support's segment cites the
 * chunks it names (`groundingChunkIndices` into `groundingChunks[].web`).
 * With `textOf` (a whole answer: the text of the candidate's part a segment
 * is in) each citation gets its segment's span, Google's byte offsets into
 * that part turned into UTF-16 ones; without (a stream, whose text went by),
 * each page cited once, over its whole block. Grounding without supports
 * cites its chunks over the whole text. At most MAX_CITATIONS an answer
 * (a broken upstream's thousands of supports stay a bounded list). Empty when nothing is cited; called
 * only for a candidate that has groundingMetadata.
 */
export function groundingCitations(grounding: GeminiGrounding, textOf: ((part: number) => string | null) | null): GroundedCitation[] {
  const chunks = Array.isArray(grounding?.groundingChunks) ? grounding.groundingChunks : []
  const found: GroundedCitation[] = []
  if (chunks.length === 0) return found
  const page = (i: unknown): UrlCitation | null => {
    const web = typeof i === 'number' ? chunks[i]?.web : undefined
    return boundedCitation(web?.uri, web?.title || undefined, undefined)
  }
  const supports = Array.isArray(grounding.groundingSupports) ? grounding.groundingSupports : []
  if (supports.length === 0 || textOf === null) {
    // Each page once, over the whole text: those the supports name, else all of them
    const named = supports.length === 0 ? chunks.map((_, i) => i) : supports.flatMap((s) => (Array.isArray(s?.groundingChunkIndices) ? s.groundingChunkIndices : []))
    const seen = new Set<number>()
    for (const i of named) {
      if (seen.has(i) || found.length >= MAX_CITATIONS) continue
      seen.add(i)
      const citation = page(i)
      if (citation !== null) found.push({ part: -1, citation })
    }
    return found
  }
  // Google's byte offsets, turned into UTF-16 ones after the walk: each part's text is read once for all its segments
  const spans: Array<{ found: GroundedCitation; start: number; end: number | undefined }> = []
  const texts = new Map<number, string | null>()
  for (const support of supports) {
    const segment = support?.segment
    const part = Number.isInteger(segment?.partIndex) ? segment!.partIndex! : 0
    let text = texts.get(part)
    if (text === undefined) texts.set(part, (text = textOf(part)))
    for (const i of Array.isArray(support?.groundingChunkIndices) ? support.groundingChunkIndices : []) {
      const citation = page(i)
      if (citation === null) continue
      if (found.length >= MAX_CITATIONS) return withSpans(found, spans, texts)
      const cited = { part: text === null ? -1 : part, citation }
      found.push(cited)
      if (text !== null && segment) {
        // proto3 leaves a 0 out: a segment from the part's start has no startIndex
        spans.push({ found: cited, start: typeof segment.startIndex === 'number' ? segment.startIndex : 0, end: typeof segment.endIndex === 'number' ? segment.endIndex : undefined })
      }
    }
  }
  return withSpans(found, spans, texts)
}

/** The citations' spans, their byte offsets into their part's text as UTF-16 ones (utf16Offsets) */
function withSpans(
  found: GroundedCitation[],
  spans: Array<{ found: GroundedCitation; start: number; end: number | undefined }>,
  texts: Map<number, string | null>
): GroundedCitation[] {
  const byPart = new Map<number, number[]>()
  for (const span of spans) {
    const offsets = byPart.get(span.found.part) ?? []
    offsets.push(span.start)
    if (span.end !== undefined) offsets.push(span.end)
    byPart.set(span.found.part, offsets)
  }
  const mapped = new Map<number, Map<number, number>>()
  for (const [part, offsets] of byPart) mapped.set(part, utf16Offsets(texts.get(part)!, offsets))
  for (const span of spans) {
    const toUtf16 = mapped.get(span.found.part)!
    const start = toUtf16.get(span.start)!
    const end = span.end === undefined ? undefined : toUtf16.get(span.end)!
    span.found.citation.start = start
    if (end !== undefined && end >= start) span.found.citation.end = end
  }
  return found
}

/**
 * Byte offsets into a text's UTF-8 -> UTF-16 offsets, all in one walk of the
 * text (decoding its bytes up to each offset was a walk per citation: 256
 * segments near the end of 4 MB of non-ASCII text blocked the event loop for
 * 4 s). An offset inside a character (a hostile or broken one) is taken to
 * the character's end, never between the two halves of a surrogate pair;
 * one past the text, to its end.
 */
function utf16Offsets(text: string, offsets: number[]): Map<number, number> {
  return convertOffsets(text, offsets, true)
}

/** A support as Gemini writes one: a segment of the answer's text and the chunks (pages) it cites */
type GroundingSupport = NonNullable<GeminiGrounding['groundingSupports']>[number]

/**
 * Another wire's citations as Gemini's grounding, built as the answer is
 * encoded: each page one `groundingChunks[].web` (by URL, the first title
 * kept), each cited span one `groundingSupports` entry naming its pages.
 * Made only for an answer that cites (nothing allocated otherwise); at most
 * MAX_CITATIONS pages and as many supports, as every encoder bounds them.
 */
export class GroundingWriter {
  #chunks: Array<{ web: { uri: string; title?: string } }> = []
  #byUrl = new Map<string, number>()
  #supports: GroundingSupport[] = []
  /** The support of each segment, by `partIndex:start:end` (several pages over one span: one support) */
  #bySegment = new Map<string, GroundingSupport>()

  /**
   * `citations` cite `text`, the part `partIndex` of the candidate (undefined:
   * a stream, offsets into the whole streamed text), which begins at `fromByte`
   * there: each span's UTF-16 offsets become UTF-8 byte offsets in one walk.
   * `text` null (a stream, whose text went by): each page over the whole
   * part, `toByte` its end, the segment without its text.
   */
  add(citations: UrlCitation[], text: string | null, partIndex: number | undefined, fromByte = 0, toByte = 0) {
    const length = text?.length ?? 0
    const spans = citations.map((citation) => (text === null ? [0, 0] : citationSpan(citation, 0, length)))
    const bytes = text === null ? null : utf8Offsets(text, spans.flat())
    citations.forEach((citation, i) => {
      const chunk = this.#chunk(citation)
      if (chunk === null) return
      const [start, end] = spans[i]
      const startIndex = bytes === null ? fromByte : fromByte + bytes.get(start)!
      const endIndex = bytes === null ? toByte : fromByte + bytes.get(end)!
      const key = `${partIndex ?? ''}:${startIndex}:${endIndex}`
      let support = this.#bySegment.get(key)
      if (support === undefined) {
        if (this.#supports.length >= MAX_CITATIONS) return
        const segment: GroundingSupport['segment'] = {}
        if (partIndex !== undefined) segment.partIndex = partIndex
        segment.startIndex = startIndex
        segment.endIndex = endIndex
        if (text !== null) segment.text = text.slice(start, end)
        support = { segment, groundingChunkIndices: [] }
        this.#bySegment.set(key, support)
        this.#supports.push(support)
      }
      if (!support.groundingChunkIndices!.includes(chunk)) support.groundingChunkIndices!.push(chunk)
    })
  }

  /** The grounding written so far, with the searches' queries when known; null when nothing was cited nor searched */
  grounding(queries?: string[]): GeminiGrounding | null {
    if (this.#chunks.length === 0 && !queries?.length) return null
    const grounding: GeminiGrounding = {}
    if (queries?.length) grounding.webSearchQueries = queries
    if (this.#chunks.length > 0) {
      grounding.groundingChunks = this.#chunks
      grounding.groundingSupports = this.#supports
    }
    return grounding
  }

  /** The page's chunk index, a new chunk for a new URL; null past MAX_CITATIONS pages */
  #chunk(citation: UrlCitation): number | null {
    const known = this.#byUrl.get(citation.url)
    if (known !== undefined) return known
    if (this.#chunks.length >= MAX_CITATIONS) return null
    const web: { uri: string; title?: string } = { uri: citation.url }
    if (citation.title) web.title = citation.title
    this.#byUrl.set(citation.url, this.#chunks.length)
    this.#chunks.push({ web })
    return this.#chunks.length - 1
  }
}

/**
 * UTF-16 offsets into a text -> UTF-8 byte offsets, all in one walk (the
 * inverse of utf16Offsets). An offset between the two halves of a surrogate
 * pair is taken to the character's end; a lone surrogate counts U+FFFD's
 * three bytes, as Buffer.from writes it.
 */
export function utf8Offsets(text: string, offsets: number[]): Map<number, number> {
  return convertOffsets(text, offsets, false)
}

/**
 * The one walk of both: the text's characters in order, each one's UTF-16
 * and UTF-8 starts side by side; each wanted offset (in bytes when
 * `fromBytes`, else in UTF-16 units) maps to the other unit's start of the
 * first character that starts at or past it; one past the text, to its end.
 */
function convertOffsets(text: string, offsets: number[], fromBytes: boolean): Map<number, number> {
  const wanted = [...new Set(offsets)].sort((a, b) => a - b)
  const out = new Map<number, number>()
  let next = 0
  let byte = 0
  let i = 0
  while (i < text.length && next < wanted.length) {
    const from = fromBytes ? byte : i
    while (next < wanted.length && wanted[next] <= from) out.set(wanted[next++], fromBytes ? i : byte)
    const code = text.codePointAt(i)!
    // A lone surrogate is written as U+FFFD's three bytes, as Buffer.from writes it
    byte += code < 0x80 ? 1 : code < 0x800 ? 2 : code < 0x10000 ? 3 : 4
    i += code > 0xffff ? 2 : 1
  }
  // Only when the walk reached the text's end (i is its length): what is left is past it
  while (next < wanted.length) out.set(wanted[next++], fromBytes ? i : byte)
  return out
}
