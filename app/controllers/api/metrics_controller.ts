import type { HttpContext } from '@adonisjs/core/http'
import app from '@adonisjs/core/services/app'
import { EXPOSITION_CONTENT_TYPE } from '#gateway/metrics/exposition'
import { assertMetricsAccess } from '#gateway/metrics/metrics_access'
import { gatewayMetrics } from '#services/gateway_metrics'

export default class MetricsController {
  /** GET /metrics: Prometheus' text format (README "Metrics"); a management key, METRICS_TOKEN or METRICS_PUBLIC. */
  async show({ request, response }: HttpContext) {
    const gateway = await app.container.make('gateway')
    await assertMetricsAccess(gateway, request.request, response.response)
    response.header('content-type', EXPOSITION_CONTENT_TYPE)
    response.header('cache-control', 'no-store')
    return response.send(gatewayMetrics(gateway))
  }
}
