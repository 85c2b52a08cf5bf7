import type { IncomingHttpHeaders } from 'node:http'

/**
 * The upstream response headers a client gets: this allowlist, nothing else.
 * Every answer's head is written by the gateway (the request id, the cache
 * status, its own x-ratelimit-* for the client's key); of the upstream's
 * head only what describes the bytes relayed as they came may follow them:
 * the content type of an audio answer or transcript (mp3 or wav, json or
 * srt) and the length of the speech streamed through. An upstream 429's wait
 * reaches the client too, but as the gateway's own Retry-After /
 * retry-after-ms (parsed and capped: dispatcher.ts, http/retry_after.ts),
 * never as the upstream's header.
 *
 * Why not the rest: they describe the operator's account with the provider,
 * which a client reselling access must not learn (OpenAI's
 * `openai-organization`, `openai-project`, Anthropic's
 * `anthropic-organization-id`, LiteLLM's `x-litellm-response-cost`); the
 * upstream account's rate limits (`x-ratelimit-*`, `anthropic-ratelimit-*`)
 * would make an SDK pace itself by limits that are not its key's, and collide
 * with the gateway's own headers of those names; the upstream's request ids
 * (`x-request-id`, `request-id`) would shadow the gateway's, the one a usage
 * row and /v1/generation know; and its infrastructure (`cf-ray`,
 * `set-cookie`, `server`, `via`, `alt-svc`, `strict-transport-security`) is
 * neither the client's business nor true of the gateway's own origin.
 */
export const RELAYED_UPSTREAM_HEADERS = ['content-type', 'content-length'] as const

export type RelayedUpstreamHeader = (typeof RELAYED_UPSTREAM_HEADERS)[number]

/** One header of the allowlist, as the upstream sent it (the first of a repeated one). */
export function relayedUpstreamHeader(headers: IncomingHttpHeaders, name: RelayedUpstreamHeader): string | undefined {
  const value = headers[name]
  return Array.isArray(value) ? value[0] : value
}
