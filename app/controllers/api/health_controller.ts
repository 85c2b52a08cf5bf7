import type { HttpContext } from '@adonisjs/core/http'
import app from '@adonisjs/core/services/app'
import { databaseHealth, gatewayVersion } from '#services/gateway_status'

const ALIVE = JSON.stringify("I'm alive!")

/**
 * LiteLLM's probe paths, which Kubernetes manifests copied from a LiteLLM
 * deployment point their liveness and readiness probes at. No key: a probe
 * sends none. /api/status says the same and more.
 */
export default class HealthController {
  /**
   * GET /health/liveliness (LiteLLM's spelling) and /health/liveness: the
   * process answers HTTP. Nothing else is looked at, so a database outage
   * (which the gateway rides out, spilling usage to disk) does not get the
   * pod restarted.
   */
  async liveness({ response }: HttpContext) {
    // A JSON string, as LiteLLM (FastAPI) answers it (Adonis would send a bare string as text).
    response.header('content-type', 'application/json; charset=utf-8')
    return response.send(ALIVE)
  }

  /**
   * GET /health/readiness: ready for traffic when the boot is over (caches
   * loaded: /api/status `ready`) and the database answers, as LiteLLM's
   * readiness requires its database; 503 otherwise, which takes the pod
   * out of the service's endpoints until it recovers.
   */
  async readiness({ response }: HttpContext) {
    const gateway = await app.container.make('gateway')
    const database = await databaseHealth()
    const ready = gateway.ready && database.status === 'ok'
    return response.status(ready ? 200 : 503).json({
      status: ready ? 'healthy' : 'unhealthy',
      ready: gateway.ready,
      db: database.status === 'ok' ? 'connected' : 'unavailable',
      version: gatewayVersion(),
    })
  }
}
