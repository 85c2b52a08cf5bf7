import type { ServerResponse } from 'node:http'
import type { CachedAnswer } from '#gateway/cache/response_cache'
import type { RequestAccount } from '#gateway/metering/request_account'
import { ZERO_USAGE } from '#gateway/types'

/**
 * Answers a request from the response cache, whatever the endpoint: the
 * stored bytes in one write with the endpoint's own headers (`headers`,
 * built by the caller: a dialect's JSON or stream headers, or the plain
 * ones of embeddings and completions), `x-gateway-cache: HIT` and their
 * `age`. The row says `cache_hit`; no provider was called, so no tokens are
 * counted against the plan and nothing is charged.
 */
export function replayCachedAnswer(res: ServerResponse, account: RequestAccount, hit: CachedAnswer, headers: Record<string, string>) {
  account.cacheHit = true
  if (account.loggedRequest !== null) account.loggedResponse = hit.bytes
  account.markFirstByte()
  if (!res.destroyed) {
    headers['x-gateway-cache'] = 'HIT'
    headers['content-length'] = String(hit.bytes.length)
    headers['age'] = String(Math.floor((Date.now() - hit.storedAt) / 1000))
    res.writeHead(200, headers)
    res.end(hit.bytes)
  }
  account.close(200, null, ZERO_USAGE)
}
