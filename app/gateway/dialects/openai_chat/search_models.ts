/**
 * OpenAI's chat completions search models (gpt-4o-search-preview,
 * gpt-4o-mini-search-preview, gpt-5-search-api, their dated snapshots, and
 * the same under a vendor prefix: OpenRouter's `openai/...`). They search
 * the web before every answer, and OpenAI bills that search per call (its
 * pricing page's "web search tool calls" of these models), whether or not
 * the answer cites a page. Only they take `web_search_options` at OpenAI
 * (other models answer 400), so an OpenAI answer to such a request names one.
 */
const SEARCH_MODEL = /(?:^|\/)gpt-[^/]*-search-(?:preview|api)(?:-\d{4}-\d{2}-\d{2})?$/i

export function isChatSearchModel(model: unknown): boolean {
  return typeof model === 'string' && SEARCH_MODEL.test(model)
}
