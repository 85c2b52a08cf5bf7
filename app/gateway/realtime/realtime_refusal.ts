import type { ServerResponse } from 'node:http'
import type { Gateway } from '#gateway/gateway'
import type { RouteCandidate } from '#gateway/routing/channel_router'
import type { Principal } from '#gateway/types'
import { ClientGoneError, type AttemptRecord } from '#gateway/upstream/dispatcher'

/**
 * The usage row of a session refused after its key was accepted (as an HTTP
 * call's: the model, the channel tried, the attempts, the error), or 499
 * client_closed for a client that left while the upstream was being opened.
 */
export function recordRefusal(
  gw: Gateway,
  principal: Principal,
  model: string,
  tried: RouteCandidate | null,
  attempts: AttemptRecord[],
  error: unknown,
  res: ServerResponse,
  /** `realtime.transcription` for a transcription session's */
  endpoint = 'realtime'
) {
  const account = gw.service.responseAccount(principal, endpoint)
  account.model = model.length <= 200 ? model : ''
  account.stream = true
  if (tried !== null) {
    account.channelId = tried.channel.id
    account.provider = tried.channel.provider
    account.servedModel = tried.upstreamModel
  }
  account.attempts = attempts
  if (error instanceof ClientGoneError) account.close(499, 'client_closed')
  else account.fail(error)
  res.setHeader('x-request-id', account.requestId)
}
