import type { IncomingMessage, ServerResponse } from 'node:http'
import { GatewayError } from '#exceptions/gateway_error'
import { modelAllowed } from '#gateway/access_policy'
import type { DialectName } from '#gateway/dialects/canonical'
import { dialectOf } from '#gateway/dialects/registry'
import { decodeClientRequest } from '#gateway/dialects/client_request'
import { countCanonicalPrompt } from '#gateway/dialects/prompt_tokens'
import type { RequestAccount } from '#gateway/metering/request_account'
import { adapterFor } from '#gateway/providers/registry'
import { fileReferencesOf, pinnedCandidates } from '#gateway/provider_files/file_pins'
import type { ChannelRouter } from '#gateway/routing/channel_router'
import { dispatch, readBody, type UpstreamBody } from '#gateway/upstream/dispatcher'
import { parseAnswer } from '#gateway/upstream/upstream_answer'
import type { Dialect } from '#gateway/dialects/dialect'
import type { Principal } from '#gateway/types'

export interface CountTokensCall {
  principal: Principal
  ingress: DialectName
  rawBody: Buffer
  body: Record<string, any>
  model: string
  req: IncomingMessage
  res: ServerResponse
}

/**
 * Token counting (`/v1/messages/count_tokens`, `:countTokens`): asked of a
 * channel that counts natively in the client's dialect, else counted with the
 * gateway's tokenizer. Free: the usage row records the call with no tokens.
 * A provider file or cache the body names is pinned as for a generation
 * (file_pins.ts): another user's is the endpoint's 404, the owner's counted
 * only on the channel holding it (another account's upstream cannot read it).
 */
export async function countTokens(router: ChannelRouter, call: CountTokensCall, account: RequestAccount) {
  account.model = call.model
  if (!modelAllowed(call.principal, call.model)) throw GatewayError.modelNotAllowed(call.model)
  const ingress = dialectOf(call.ingress)
  // Resolved as a generation is: a client set up with `claude-…-thinking` counts it at its base model.
  const plan = router.resolve(call.model)
  if (typeof plan === 'object' && plan.suffix !== undefined) {
    account.model = plan.suffix.base
    account.requestedModel = call.model
  }
  let candidates = router.candidatesOf(plan, call.model)
  const files = fileReferencesOf(call.ingress, call.rawBody, call.body, candidates)
  if (files !== null) candidates = await pinnedCandidates(candidates, files, call.principal.user.id, call.model)
  const native = candidates.filter((c) => {
    const adapter = adapterFor(c.channel.provider)
    return adapter.countsTokens(c.channel, c.upstreamModel) && adapter.dialects(c.channel, c.upstreamModel).includes(call.ingress)
  })
  let bytes: Buffer
  let status = 200
  if (native.length > 0) {
    const result = await dispatch(
      native,
      (c) => {
        const changed = ingress.passThrough.upstreamBody(call.body, c.upstreamModel, call.model, false)
        return adapterFor(c.channel.provider).request(c.channel, {
          operation: 'count_tokens',
          dialect: call.ingress,
          model: c.upstreamModel,
          stream: false,
          body: changed ? JSON.stringify(changed) : call.rawBody,
          clientHeaders: call.req.headers,
        })
      },
      account.abort.signal,
      account.dispatchHooks,
      // Read in its attempt: not JSON, an error body or no count fails over like a 5xx.
      (body) => readCount(body, ingress)
    )
    status = result.response.statusCode
    bytes = result.answer
  } else {
    const tokens = await countCanonicalPrompt(decodeClientRequest(ingress, call.body))
    bytes = Buffer.from(JSON.stringify(ingress.encodeTokenCount?.(tokens) ?? { tokens }))
  }
  account.markFirstByte()
  if (!call.res.destroyed) {
    call.res.writeHead(status, {
      'content-type': 'application/json',
      'content-length': String(bytes.length),
      'x-request-id': account.requestId,
    })
    call.res.end(bytes)
  }
  account.close(status, null)
}

/**
 * dispatch()'s AnswerCheck: the upstream's count, relayed as its bytes once
 * they read as the dialect's count (upstream_answer.ts for the rest).
 */
async function readCount(body: UpstreamBody, dialect: Dialect): Promise<Buffer> {
  const bytes = await readBody(body)
  const parsed = parseAnswer(bytes)
  if (dialect.isTokenCount && !dialect.isTokenCount(parsed)) throw GatewayError.providerError('Upstream returned an answer without its token count')
  return bytes
}
