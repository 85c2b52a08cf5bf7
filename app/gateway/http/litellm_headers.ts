import type { ServerResponse } from 'node:http'
import { fromPico } from '#gateway/metering/money'
import type { RequestAccount } from '#gateway/metering/request_account'
import type { ChannelInfo } from '#gateway/types'

/**
 * LiteLLM's proxy answers every call with `x-litellm-*` headers that its
 * users' tooling reads (cost trackers read `x-litellm-response-cost`, budget
 * checks `x-litellm-key-spend`, traces `x-litellm-call-id`): a generation's
 * answer here carries the ones the gateway knows, in LiteLLM's formats
 * (https://docs.litellm.ai/docs/proxy/response_headers), as does one of the
 * other metered endpoints (addOperationHeaders).
 *
 * Always (four headers, what tooling reads most):
 * - call id: the request id (the one a usage row and /v1/generation know)
 * - response cost: USD, what the usage row bills for a whole answer. A
 *   stream's headers go out before its usage exists: absent, as LiteLLM
 *   leaves it out of a stream's headers (its value would be None). Absent too
 *   on a passed-through answer without usage (counted by the tokenizer after
 *   the answer went out)
 * - response duration: ms from the request's arrival to its headers (a
 *   stream's: its first byte)
 * - key spend: USD, the key's spend before this request (in its current
 *   period when its cap resets)
 *
 * Only when they say something (each header costs ~0.2 µs in writeHead, and
 * the full set passed the hot path's budget: docs/benchmarks.md):
 * - key max budget: when the key has a spend cap
 * - attempted retries / fallbacks: when not 0 (failed attempts on the model
 *   that answered, fallback models tried after the one asked for); absent
 *   reads as LiteLLM's 0
 * - model group: the model the client asked for, when another one answered
 *   (a fallback) or it was a suffixed name (`-thinking`, `:nitro`);
 *   percent-encoded when it holds more than printable ASCII (headerText)
 *
 * The deployment's own headers (`x-litellm-model-id`: the channel's id,
 * `x-litellm-model-api-base`: its base URL without user info or query)
 * say which of the operator's upstream accounts served: only with
 * LITELLM_DEPLOYMENT_HEADERS=true (relayed_headers.ts says why an operator
 * may not want that known). Rate-limit headers are the gateway's own
 * x-ratelimit-* (limits/rate_limits.ts), written when the key has limits;
 * an upstream's never reach the client. LITELLM_HEADERS=false sends none.
 */
export function addLiteLLMHeaders(
  headers: Record<string, string>,
  account: RequestAccount,
  modelGroup: string,
  costPico: bigint | null,
  deployment: ChannelInfo | null
) {
  headers['x-litellm-call-id'] = account.requestId
  headers['x-litellm-response-duration-ms'] = String(Math.round(performance.now() - account.startedAt))
  const key = account.principal.key
  headers['x-litellm-key-spend'] = usdText(key.spentPico)
  if (costPico !== null) headers['x-litellm-response-cost'] = usdText(costPico)
  if (key.spendLimitPico !== null) headers['x-litellm-key-max-budget'] = usdText(key.spendLimitPico)
  if (account.attemptsOnModel > 1) headers['x-litellm-attempted-retries'] = String(account.attemptsOnModel - 1)
  if (account.fallbacksTried > 0) headers['x-litellm-attempted-fallbacks'] = String(account.fallbacksTried)
  if (account.requestedModel !== null) headers['x-litellm-model-group'] = headerText(modelGroup)
  if (deployment !== null) {
    headers['x-litellm-model-id'] = String(deployment.id)
    let base = shownBases.get(deployment)
    if (base === undefined) shownBases.set(deployment, (base = publicBaseUrl(deployment.baseUrl)))
    if (base !== null) headers['x-litellm-model-api-base'] = base
  }
}

/**
 * LITELLM_HEADERS and LITELLM_DEPLOYMENT_HEADERS as the operator set them
 * (GatewayService.litellmHeaders / deploymentHeaders write here): read by
 * the endpoints outside the generations' Exchange (operationHeaders).
 */
export const liteLLMHeaderSettings = { on: true, deployment: false }

/**
 * LiteLLM's headers on the answer of a metered endpoint other than the
 * generations (embeddings, legacy completions, images, audio, rerank,
 * moderations), which LiteLLM's proxy answers with them too. `costPico`:
 * what the row bills, for a whole answer whose usage is known when its
 * headers go out (null: a stream, or counted by the tokenizer afterwards);
 * `channel`: the one that answered. The model group, as for generations, is
 * the model asked for when another one answered.
 */
export function addOperationHeaders(headers: Record<string, string>, account: RequestAccount, costPico: bigint | null, channel: ChannelInfo | null) {
  if (!liteLLMHeaderSettings.on) return
  addLiteLLMHeaders(headers, account, account.requestedModel ?? account.model, costPico, liteLLMHeaderSettings.deployment ? channel : null)
}

/**
 * LiteLLM's headers on a metered endpoint's error answer, as its proxy sends
 * them on errors too (the call id a trace or a support request quotes, the
 * key's spend): set on `res` before the error is written (api_errors.ts
 * sendApiError). `costPico`: 0 when the failure's row bills nothing (LiteLLM
 * says 0), null when the row was written before with what it bills (a refusal
 * of a paid answer): absent then. No deployment headers: no channel answered.
 */
export function setErrorHeaders(res: ServerResponse, account: RequestAccount, costPico: bigint | null) {
  if (!liteLLMHeaderSettings.on) return
  const headers: Record<string, string> = {}
  addLiteLLMHeaders(headers, account, account.requestedModel ?? account.model, costPico, null)
  for (const name in headers) res.setHeader(name, headers[name])
}

/**
 * A client's text as a header value: as it is when printable ASCII, else
 * percent-encoded (UTF-8). Node throws on a value with a character above
 * U+00FF (a model name may hold any but control characters: model_name.ts),
 * which would turn an answered, billed request into a 500; Latin-1 it would
 * write as is, and clients would read its bytes as Latin-1, not the name.
 */
export function headerText(value: string): string {
  return PRINTABLE_ASCII.test(value) ? value : encodeURIComponent(value.toWellFormed())
}

const PRINTABLE_ASCII = /^[\x20-\x7e]*$/

/** A channel's shown base URL, made once per channel object (the catalog makes new ones when channels change) */
const shownBases = new WeakMap<ChannelInfo, string | null>()

/** pico-USD as LiteLLM writes a dollar figure (a float's text: `0.00042`, `1.5e-7`, `0`). */
export function usdText(pico: bigint): string {
  return pico === 0n ? '0' : String(Number(fromPico(pico)))
}

/**
 * A channel's base URL as it may be shown: scheme, host, port and path,
 * without the user info (`https://user:secret@host`) or the query (a key in
 * `?key=`); null when it is not a URL.
 */
export function publicBaseUrl(baseUrl: string): string | null {
  let url: URL
  try {
    url = new URL(baseUrl)
  } catch {
    return null
  }
  return `${url.protocol}//${url.host}${url.pathname.replace(/\/+$/, '')}`
}
