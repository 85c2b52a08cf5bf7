import { GatewayError } from '#exceptions/gateway_error'
import type { DialectName } from '#gateway/dialects/canonical'
import { groundsWithSearch, MAX_WEB_SEARCH_HOLD } from '#gateway/metering/reservation'
import type { ProviderKind } from '#gateway/types'

/**
 * OpenRouter's web search (`model:online`, `plugins: [{"id": "web",
 * "max_results"?}]`, and chat's `web_search_options` sent to a channel of
 * another wire) served by the upstream's own server-side search tool, billed
 * per search like a client's own tool (per_web_search; the decoders count
 * Anthropic's `server_tool_use`, Responses' `web_search_call`, chat's
 * `url_citation`, Gemini's grounding).
 */

/** Searches an Anthropic tool may make when the request names no `max_results` (OpenRouter's default) */
export const DEFAULT_WEB_RESULTS = 5

/**
 * The searches a request asks for by OpenRouter's means, or null (the usual
 * case: one property test, `plugins`, when the name had no `:online` and the
 * client is not chat). `online`: the model name's `:online` suffix.
 */
export function webSearchAsked(body: Record<string, any>, chat: boolean, online: boolean): number | null {
  const plugins = body.plugins
  if (plugins !== undefined) {
    if (Array.isArray(plugins)) {
      for (const plugin of plugins) {
        if (plugin !== null && typeof plugin === 'object' && plugin.id === 'web') return maxResults(plugin.max_results)
      }
    }
  }
  if (online) return DEFAULT_WEB_RESULTS
  if (chat && body.web_search_options !== null && typeof body.web_search_options === 'object') return DEFAULT_WEB_RESULTS
  return null
}

function maxResults(value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) return DEFAULT_WEB_RESULTS
  return Math.min(value, MAX_WEB_SEARCH_HOLD)
}

/**
 * The upstream body (the client's passed through, or a translation's) with
 * the vendor's own search tool: Anthropic `web_search_20250305` with
 * `max_uses`, Gemini `googleSearch`, Responses `web_search`, chat
 * `web_search_options: {}`. Left as it is when it already has one (a second
 * Anthropic `web_search` tool is refused), on an `openrouter` channel (it got
 * `plugins` and the name as sent: it searches itself) and on Bedrock (no
 * server-side search). A shallow copy.
 *
 * A client's own tool named `web_search` (a function, or a chat function
 * translated) beside Anthropic's server tool is two tools of one name,
 * which Anthropic refuses: the client's 400 here, naming the clash, rather
 * than dropping either tool. Thrown while the body is built, which
 * `Exchange.prepare` does before any upstream call.
 */
export function withWebSearch(dialect: DialectName, provider: ProviderKind, body: Record<string, any>, maxUses: number): Record<string, any> {
  if (provider === 'openrouter' || provider === 'bedrock') return body
  const tools: unknown[] = Array.isArray(body.tools) ? body.tools : []
  switch (dialect) {
    case 'anthropic_messages':
      if (tools.some(isSearchTool)) return body
      if (tools.some((t: any) => t?.name === 'web_search')) throw webSearchClash()
      return { ...body, tools: [...tools, { type: 'web_search_20250305', name: 'web_search', max_uses: maxUses }] }
    case 'gemini':
      if (tools.some((t) => t !== null && typeof t === 'object' && groundsWithSearch(t))) return body
      return { ...body, tools: [...tools, { googleSearch: {} }] }
    case 'openai_responses':
      if (tools.some(isSearchTool)) return body
      return { ...body, tools: [...tools, { type: 'web_search' }] }
    case 'openai_chat':
      if (body.web_search_options !== undefined && body.web_search_options !== null) return body
      return { ...body, web_search_options: {} }
  }
}

function isSearchTool(tool: any): boolean {
  return typeof tool?.type === 'string' && tool.type.startsWith('web_search')
}

function webSearchClash(): GatewayError {
  return GatewayError.invalidRequest(
    "A tool of the request is named 'web_search', the name of the web search that ':online' or plugins [{\"id\": \"web\"}] adds on this " +
      "model's Anthropic channel (two tools of one name are refused). Rename the tool, or leave out ':online' and the web plugin.",
    'web_search_tool_clash',
    'tools'
  )
}
