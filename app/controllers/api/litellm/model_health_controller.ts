import type { HttpContext } from '@adonisjs/core/http'
import type { ChannelTestRow } from '#actions/test_all_channels'
import { modelHealth } from '#actions/model_health'
import { apiActor } from '#services/management_api'
import { fieldError, litellmManaged } from '#services/litellm_management'

/**
 * GET /health (LiteLLM's model health check, the management key only): a
 * minimal generation through each channel in rotation, or each channel that
 * serves `?model=`, answered in LiteLLM's shape. The probes that make no
 * upstream call are /health/liveliness and /health/readiness.
 */
export default class ModelHealthController {
  async show(ctx: HttpContext) {
    return litellmManaged(async () => {
      const model = modelParam(ctx.request.qs().model)
      const health = await modelHealth(model, apiActor(ctx))
      const endpoint = (row: ChannelTestRow) => ({
        model: row.model,
        api_base: health.baseUrls.get(row.channelId) ?? null,
        channel_id: row.channelId,
        channel: row.name,
        latency_ms: row.latencyMs,
        ...(row.ok ? {} : { status: row.status, error: row.message }),
      })
      return {
        healthy_endpoints: health.healthy.map(endpoint),
        unhealthy_endpoints: health.unhealthy.map(endpoint),
        healthy_count: health.healthy.length,
        unhealthy_count: health.unhealthy.length,
      }
    })
  }
}

/** `?model=`: absent for every channel; else one model name, as a request would name it */
function modelParam(value: unknown): string | null {
  if (value === undefined) return null
  if (typeof value !== 'string') throw fieldError('model', 'give one model name')
  const model = value.trim()
  if (model === '' || model.length > 200) throw fieldError('model', 'a model name of 1 to 200 characters')
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(model)) throw fieldError('model', 'control characters are not allowed')
  return model
}
