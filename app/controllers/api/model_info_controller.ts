import type { HttpContext } from '@adonisjs/core/http'
import app from '@adonisjs/core/services/app'
import { GatewayError } from '#exceptions/gateway_error'
import { modelAllowed } from '#gateway/access_policy'
import { liteLLMModelInfo } from '#services/litellm_model_info'

/**
 * LiteLLM's proxy model info, for clients set up for a LiteLLM proxy (Cline,
 * Roo Code, Kilo Code): `GET /v1/model/info` and `/model/info`, and
 * `/v1/model_group/info` (`/model_group/info`). Key auth as `/v1/models`,
 * the same models; no database read (services/litellm_model_info.ts).
 */
export default class ModelInfoController {
  /** `{"data": [{model_name, litellm_params, model_info}]}`; `?litellm_model_id=` selects one (LiteLLM's filter). */
  async index({ principal, request, response }: HttpContext) {
    const gateway = await app.container.make('gateway')
    const entries = liteLLMModelInfo(gateway, principal)
    const wanted = request.qs().litellm_model_id
    if (typeof wanted !== 'string' || wanted === '') return response.json({ data: entries })
    const entry = entries.find((e) => e.model_info.id === wanted)
    if (entry) return response.json({ data: [entry] })
    throw notListed(principal, wanted)
  }

  /**
   * LiteLLM's model groups (`GET /model_group/info`): a group is a public model name and its
   * deployments; here one model, one group. `?model_group=` selects one.
   */
  async groups({ principal, request, response }: HttpContext) {
    const gateway = await app.container.make('gateway')
    const wanted = request.qs().model_group
    const data = []
    for (const { model_name: name, model_info: info } of liteLLMModelInfo(gateway, principal)) {
      if (typeof wanted === 'string' && wanted !== '' && name !== wanted) continue
      const group: Record<string, unknown> = {
        model_group: name,
        providers: [info.litellm_provider],
        mode: info.mode,
        max_input_tokens: info.max_input_tokens,
        max_output_tokens: info.max_output_tokens,
        input_cost_per_token: info.input_cost_per_token,
        output_cost_per_token: info.output_cost_per_token,
      }
      if (info.supports_prompt_caching !== undefined) group.supports_prompt_caching = info.supports_prompt_caching
      data.push(group)
    }
    if (typeof wanted === 'string' && wanted !== '' && data.length === 0) {
      throw notListed(principal, wanted)
    }
    return response.json({ data })
  }
}

/**
 * A name the list does not hold: a model the key may not use is refused as such (as by GET
 * /v1/models/{model}); else 404, the list being the models GET /v1/models lists (a name a glob or
 * the prefix table would still route is no entry of it).
 */
function notListed(principal: HttpContext['principal'], model: string): GatewayError {
  if (!modelAllowed(principal, model)) return GatewayError.modelNotAllowed(model)
  return new GatewayError(404, 'model_not_found', `No model info for '${model}': it is not among the models GET /v1/models lists`, 'not_found_error')
}
