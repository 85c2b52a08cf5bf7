import type { HttpContext } from '@adonisjs/core/http'
import { authenticate } from '#gateway/auth/authenticate'
import { unlessClientGone } from '#gateway/batches/upstream_calls'
import { closeSignal } from '#gateway/batches/files_api'
import { apiCallOf, gatewayInstance } from '#gateway/http/generation_request'
import { mintClientSecret } from '#gateway/realtime/client_secrets'
import { createCall, hangupCall } from '#gateway/realtime/realtime_calls'

export default class RealtimeController {
  /**
   * GET /v1/realtime without a WebSocket upgrade: the Realtime API is a
   * WebSocket (app/gateway/realtime/realtime_upgrade.ts takes the upgrades
   * before the router), so this is 426 and says how to connect.
   */
  async withoutUpgrade({ response }: HttpContext) {
    response.status(426).header('upgrade', 'websocket')
    return response.json({
      error: {
        message: 'The Realtime API is a WebSocket: connect to wss://<gateway>/v1/realtime?model=<model> with Upgrade: websocket',
        type: 'invalid_request_error',
        param: null,
        code: 'upgrade_required',
      },
    })
  }

  /** POST /v1/realtime/client_secrets: a browser's short-lived secret (client_secrets.ts) */
  async clientSecret(ctx: HttpContext) {
    return ctx.response.json(await mintClientSecret(await gatewayInstance(), apiCallOf(ctx), 'ga'))
  }

  /** POST /v1/realtime/sessions (the beta API): the session with its `client_secret` */
  async betaSession(ctx: HttpContext) {
    return ctx.response.json(await mintClientSecret(await gatewayInstance(), apiCallOf(ctx), 'beta'))
  }

  /** POST /v1/realtime/transcription_sessions (the beta API): a transcription session with its `client_secret` */
  async transcriptionSession(ctx: HttpContext) {
    return ctx.response.json(await mintClientSecret(await gatewayInstance(), apiCallOf(ctx), 'transcription'))
  }

  /** POST /v1/realtime/calls: a WebRTC call (realtime_calls.ts), with a client secret or a key: its own authentication */
  async createCall({ request, response }: HttpContext) {
    const answer = await unlessClientGone(createCall(await gatewayInstance(), request.request, response.response))
    if (answer === undefined) return
    response.status(201).header('content-type', 'application/sdp').header('location', `/v1/realtime/calls/${answer.id}`)
    return response.send(answer.sdp)
  }

  /**
   * POST /v1/realtime/calls/:id/hangup: a call of this instance's or of another's (realtime_calls.ts).
   * The key is checked (and its IP allowlist) but the request is not admitted: it ends work, and the call
   * holds the key's place among its calls in flight; a rate window spent must not keep a call running.
   */
  async hangup(ctx: HttpContext) {
    const gw = await gatewayInstance()
    ctx.principal = await authenticate(gw, ctx.request.request, ctx.response.response, undefined, null)
    await unlessClientGone(hangupCall(gw, ctx.principal, ctx.params.id, closeSignal(apiCallOf(ctx))))
    return ctx.response.status(200).send('')
  }
}
