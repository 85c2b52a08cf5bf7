/**
 * The API's paths (/v1, /v1beta, the management API, rerank's aliases, the
 * OpenAI paths without /v1 that LiteLLM also serves, Azure OpenAI's
 * `/openai/...`, OpenAI's legacy `/engines/...` without /v1, LiteLLM's `/health` and `/health/...` probes, `/metrics` and its `/key/`, `/spend/`, `/user/`, `/customer/`, `/budget/`, `/team/`, `/global/spend/` management and `/utils/token_counter`, the Files and Batch API's `/files`, `/batches`, the Videos API's `/videos`, the Conversations API's `/conversations`), as against the pages: errors there are answered in a wire
 * format, not an HTML page (the exception handler, Node parser refusals, a
 * malformed URL), and browsers get CORS.
 */
const API_PREFIXES = [
  '/v1',
  '/api/',
  '/v2/rerank',
  '/rerank',
  '/chat/completions',
  '/completions',
  '/responses',
  '/conversations',
  '/realtime',
  '/embeddings',
  '/images/',
  '/audio/',
  '/moderations',
  '/files',
  // Gemini's Files API uploads (/upload/v1beta/files) and downloads (/download/v1beta/files/...: a batch's results)
  '/upload/',
  '/download/',
  '/batches',
  // OpenAI's Videos API without /v1 (videos/videos_api.ts)
  '/videos',
  '/models',
  '/model/info',
  '/model_group/info',
  '/openai/',
  '/engines/',
  '/health/',
  // LiteLLM's key, spend, user, customer, budget, team and organization management (controllers/api/litellm/)
  '/key/',
  '/spend/',
  '/user/',
  '/customer/',
  '/budget/',
  '/team/',
  '/organization/',
  '/global/spend/',
  // LiteLLM's /utils/token_counter
  '/utils/',
]

export function isApiPath(path: string): boolean {
  // LiteLLM's model health check (its probes are under /health/)
  if (path === '/health' || path.startsWith('/health?')) return true
  // Prometheus' scrape (controllers/api/metrics_controller.ts): its refusals in OpenAI's JSON, not a page
  if (path === '/metrics' || path.startsWith('/metrics?') || path.startsWith('/metrics/')) return true
  for (const prefix of API_PREFIXES) if (path.startsWith(prefix)) return true
  return false
}
