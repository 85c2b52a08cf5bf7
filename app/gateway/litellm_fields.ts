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
 */
export const LITELLM_FIELDS = ['drop_params', 'additional_drop_params', 'num_retries', 'litellm_session_id', 'litellm_trace_id', 'litellm_metadata'] as const

/** Does the body carry any of them: six property lookups, nothing allocated (the usual answer is no). */
export function carriesLiteLLMFields(body: Record<string, any>): boolean {
  for (const field of LITELLM_FIELDS) if (body[field] !== undefined) return true
  return false
}

/** Takes them out of the body, in place. */
export function deleteLiteLLMFields(body: Record<string, any>): void {
  for (const field of LITELLM_FIELDS) delete body[field]
}
