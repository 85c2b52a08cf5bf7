import { boundedCitation, MAX_CITATIONS, type UrlCitation } from '#gateway/dialects/canonical'

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
  const offsets = new Map<number, ((bytes: number) => number) | null>()
  for (const support of supports) {
    const segment = support?.segment
    const part = Number.isInteger(segment?.partIndex) ? segment!.partIndex! : 0
    let toUtf16 = offsets.get(part)
    if (toUtf16 === undefined) offsets.set(part, (toUtf16 = utf16Offsets(textOf(part))))
    for (const i of Array.isArray(support?.groundingChunkIndices) ? support.groundingChunkIndices : []) {
      const citation = page(i)
      if (citation === null) continue
      if (found.length >= MAX_CITATIONS) return found
      if (toUtf16 !== null && segment) {
        // proto3 leaves a 0 out: a segment from the part's start has no startIndex
        const start = toUtf16(typeof segment.startIndex === 'number' ? segment.startIndex : 0)
        const end = typeof segment.endIndex === 'number' ? toUtf16(segment.endIndex) : undefined
        citation.start = start
        if (end !== undefined && end >= start) citation.end = end
      }
      found.push({ part: toUtf16 === null ? -1 : part, citation })
    }
  }
  return found
}

/** Byte offsets into a text's UTF-8 -> UTF-16 offsets (the identity for ASCII); null: no such text part */
function utf16Offsets(text: string | null): ((bytes: number) => number) | null {
  if (text === null) return null
  const bytes = Buffer.from(text, 'utf8')
  if (bytes.length === text.length) return (at) => Math.max(0, Math.min(at, text.length))
  return (at) => (at <= 0 ? 0 : bytes.subarray(0, Math.min(at, bytes.length)).toString('utf8').length)
}
