import type { HttpContext } from '@adonisjs/core/http'

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
}
