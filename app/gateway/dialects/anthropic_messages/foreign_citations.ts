/**
 * The web search citations the gateway wrote into an Anthropic answer
 * translated from another wire (`web_search_result_location` with an empty
 * `encrypted_index`: only Anthropic's own searches have one) come back in a
 * client's history. Anthropic reads `encrypted_index` as a reference into
 * its own search results (required, and "must be passed back" as given), so
 * an empty one is no citation it can resolve: such citations are dropped
 * before the history goes to an Anthropic-dialect channel. The block's text
 * stays (the cited words are the model's own); a block's other citations
 * (Anthropic's, a document's) stay as sent. `citations` is optional on a
 * text block: a block left with none loses the field.
 */

/** A citation Anthropic cannot resolve: a web search result location without its encrypted index */
function isForeign(citation: any): boolean {
  return citation?.type === 'web_search_result_location' && (typeof citation.encrypted_index !== 'string' || citation.encrypted_index === '')
}

/** The blocks without foreign citations; null when none had any (nothing copied) */
function cleanedBlocks(blocks: any[]): any[] | null {
  let cleaned: any[] | null = null
  for (let i = 0; i < blocks.length; i++) {
    const block = blocks[i]
    let next = block
    if (Array.isArray(block?.citations) && block.citations.some(isForeign)) {
      const kept = block.citations.filter((citation: any) => !isForeign(citation))
      const { citations: _dropped, ...rest } = block
      next = kept.length > 0 ? { ...rest, citations: kept } : rest
    } else if (block?.type === 'tool_result' && Array.isArray(block.content)) {
      // A tool result's own text blocks may carry citations too
      const content = cleanedBlocks(block.content)
      if (content !== null) next = { ...block, content }
    }
    if (next !== block) (cleaned ??= blocks.slice())[i] = next
  }
  return cleaned
}

/**
 * The request body with the foreign citations of its messages dropped (a
 * copy of what changed); null when it has none, the common case: one
 * property test per content block of the history, no allocation.
 */
export function withoutForeignCitations(body: Record<string, any>): Record<string, any> | null {
  const messages = body?.messages
  if (!Array.isArray(messages)) return null
  let cleaned: any[] | null = null
  for (let i = 0; i < messages.length; i++) {
    const content = messages[i]?.content
    if (!Array.isArray(content)) continue
    const blocks = cleanedBlocks(content)
    if (blocks !== null) (cleaned ??= messages.slice())[i] = { ...messages[i], content: blocks }
  }
  return cleaned === null ? null : { ...body, messages: cleaned }
}
