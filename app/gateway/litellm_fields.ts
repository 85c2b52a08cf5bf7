/**
 * Request fields that only a LiteLLM proxy reads, which clients set up for
 * one send (Cline's LiteLLM provider: `drop_params` and `litellm_session_id`
 * on every request). LiteLLM never sends them on to a provider, and OpenAI
 * refuses them ("Unrecognized request argument supplied"): they are the
 * gateway's, like `fallbacks`. (`drop_params` needs no counterpart here: the
 * gateway already leaves out or renames what a vendor refuses where it knows.)
 *
 * The one list: generations take them out where the body is built
 * (GatewayService), the relayed endpoints (embeddings, images, completions,
 * rerank, moderations, speech) when the body is read (generation_request.ts).
 * `cache` is LiteLLM's per-request cache controls ({"ttl": 600}, {"no-cache":
 * true}...), read by the response cache (response_cache.ts) before it goes.
 */
export const LITELLM_FIELDS = ['drop_params', 'additional_drop_params', 'num_retries', 'litellm_session_id', 'litellm_trace_id', 'litellm_metadata', 'cache'] as const

/** Does the body carry any of them: seven property lookups, nothing allocated (the usual answer is no). */
export function carriesLiteLLMFields(body: Record<string, any>): boolean {
  for (const field of LITELLM_FIELDS) if (body[field] !== undefined) return true
  return false
}

/**
 * Where `cache` is kept once taken out of a relayed body (a symbol: never
 * serialised), for the response cache to read after the body was cleaned.
 */
export const LITELLM_CACHE = Symbol('litellm cache controls')

/** Takes them out of the body, in place (`cache` kept aside under LITELLM_CACHE). */
export function deleteLiteLLMFields(body: Record<string | symbol, any>): void {
  if (body.cache !== undefined) body[LITELLM_CACHE] = body.cache
  for (const field of LITELLM_FIELDS) delete body[field]
}

/** The request's LiteLLM cache controls, in the body or kept aside; undefined (the usual case) when none. */
export function litellmCacheOf(body: Record<string | symbol, any>): unknown {
  return body.cache ?? body[LITELLM_CACHE]
}
