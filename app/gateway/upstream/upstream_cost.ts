/**
 * What an OpenAI-compatible upstream states of its own bill in an answer's
 * `usage`: OpenRouter's `cost` (credits charged to the account that called
 * it), `cost_details` (`upstream_inference_cost`: what the provider behind
 * it charged) and `is_byok`, which it now writes in every answer, asked or
 * not (https://openrouter.ai/docs/use-cases/usage-accounting: "Full usage
 * details are now always included automatically in every response"). That
 * account is the operator's, and its bill what the operator pays: a client
 * reselling access must not see it. The names are OpenRouter's; they are
 * taken out whatever the channel's kind, since an operator may reach
 * OpenRouter (or a proxy that passes its answers on) through a `custom`
 * channel, and no OpenAI field has these names. When the client asked for
 * usage accounting, the gateway writes its own `cost` afterwards
 * (openai_chat/amend.ts). Kept: OpenAI's public `system_fingerprint`,
 * `service_tier`, and every token count.
 */
const UPSTREAM_COST_FIELDS = ['cost', 'cost_details', 'is_byok'] as const

/**
 * Takes the upstream's bill out of a parsed answer's (or stream chunk's)
 * `usage`; true when there was one (the bytes must then be written again).
 * Absent, it costs a property lookup or three on an object already parsed.
 */
export function dropUpstreamCost(parsed: any): boolean {
  const usage = parsed?.usage
  if (usage === null || typeof usage !== 'object') return false
  let dropped = false
  for (const field of UPSTREAM_COST_FIELDS) {
    if (usage[field] === undefined) continue
    delete usage[field]
    dropped = true
  }
  return dropped
}

/** A whole passed-through answer's bytes without the upstream's bill: the same bytes when it stated none. */
export function withoutUpstreamCost(bytes: Buffer, parsed: any): Buffer {
  return dropUpstreamCost(parsed) ? Buffer.from(JSON.stringify(parsed)) : bytes
}
