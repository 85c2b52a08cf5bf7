import { GatewayError } from '#exceptions/gateway_error'
import { authorizeModel } from '#gateway/access_policy'
import type { Gateway } from '#gateway/gateway'
import { assertStorableModel } from '#gateway/http/model_name'
import { adapterFor } from '#gateway/providers/registry'
import type { RouteCandidate } from '#gateway/routing/channel_router'
import type { Principal } from '#gateway/types'

/**
 * OpenAI's realtime **transcription sessions**: the user's audio in, its
 * transcription out (`conversation.item.input_audio_transcription.delta` /
 * `.completed`), no responses. The client opens `?intent=transcription`
 * (the upstream too: OpenAI refuses a transcription model in `?model=`) and
 * names the model in its session update: the GA `session.update` with
 * `session.type: "transcription"` and `session.audio.input.transcription.model`,
 * or the beta `transcription_session.update` with
 * `session.input_audio_transcription.model`. That model is the session's:
 * routed, checked against the key and metered per completed transcription
 * (its token prices, or its per-second price for whisper-1).
 */

/** Where a session configuration names its transcription model: the GA shape, then the beta one */
const MODEL_PLACES: Array<[(session: any) => unknown, string]> = [
  [(session) => session?.audio?.input?.transcription?.model, 'session.audio.input.transcription.model'],
  [(session) => session?.input_audio_transcription?.model, 'session.input_audio_transcription.model'],
]

/** The transcription model a session configuration names ('' when none), and where it would be named */
export function transcriptionModelIn(session: Record<string, any>): { model: string; param: string } {
  for (const [read, param] of MODEL_PLACES) {
    const model = read(session)
    if (typeof model === 'string' && model !== '') return { model, param }
  }
  return { model: '', param: session?.audio !== undefined || session?.type === 'transcription' ? MODEL_PLACES[0][1] : MODEL_PLACES[1][1] }
}

/** Is a secret's configuration a transcription session's? (GA `type: "transcription"`; the beta endpoint stores it so too) */
export function isTranscriptionConfig(session: Record<string, any>): boolean {
  return session?.type === 'transcription'
}

/**
 * What a transcription session of this model is asked before it is opened
 * or a secret for it given out: the model's access, the key's cap, monthly
 * tokens and the balance (authorizeModel, as any call of the model), and a
 * channel serving it that speaks the Realtime API. The candidates, in the
 * router's order.
 */
export function transcriptionCandidates(gw: Gateway, principal: Principal, model: string): RouteCandidate[] {
  assertStorableModel(model)
  authorizeModel(gw.catalog, principal, model)
  const candidates = gw.service
    .router(principal.plan)
    .route(model)
    .filter((c) => adapterFor(c.channel.provider).realtime?.(c.channel, c.upstreamModel) != null)
  if (candidates.length === 0) {
    throw GatewayError.invalidRequest(
      `No channel serving '${model}' offers the Realtime API's transcription sessions (openai, azure and custom channels do)`,
      'unsupported_endpoint'
    )
  }
  return candidates
}

/** The model of a secret minted for a transcription session: required (the gateway routes by it) */
export function requireTranscriptionModel(session: Record<string, any>): string {
  const { model, param } = transcriptionModelIn(session)
  if (model === '') throw GatewayError.invalidRequest(`A transcription session's model is required (${param})`, 'missing_model', param)
  return model
}

/**
 * The update that applies a transcription secret's configuration upstream
 * (before the client's first event): the beta `transcription_session.update`
 * or the GA `session.update`, its model as the channel names it (an Azure
 * deployment, a mapped name).
 */
export function transcriptionUpdateOf(session: Record<string, any>, beta: boolean, channelModel: string): string {
  const config = structuredClone(session)
  delete config.object
  delete config.id
  delete config.expires_at
  delete config.client_secret
  if (beta) delete config.type
  else config.type = 'transcription'
  const setting = config.audio?.input?.transcription ?? config.input_audio_transcription
  if (setting !== null && typeof setting === 'object') setting.model = channelModel
  return JSON.stringify({ type: beta ? 'transcription_session.update' : 'session.update', session: config })
}
