import type { HttpContext } from '@adonisjs/core/http'
import app from '@adonisjs/core/services/app'
import { GatewayError } from '#exceptions/gateway_error'
import { modelAllowed } from '#gateway/access_policy'
import type { ChannelRouter } from '#gateway/routing/channel_router'
import type { Gateway } from '#gateway/gateway'
import type { Principal } from '#gateway/types'
import { contextWindowOf, openRouterPricing } from '#services/model_catalogue'

/**
 * `GET /v1/models` and `GET /v1/models/{model}`: the models this key may use.
 * OpenAI's SDKs and Anthropic's share the path; Anthropic's always send
 * `anthropic-version` (and Claude Code's gateway model discovery does too), so
 * that header picks Anthropic's shape (`type`, `display_name`, `created_at`,
 * `has_more`/`first_id`/`last_id` for its pager) over OpenAI's (`object`,
 * `created`, `owned_by`).
 */
export default class ModelsController {
  async index({ principal, request, response }: HttpContext) {
    const gateway = await app.container.make('gateway')
    const models = gateway.service
      .router(principal.plan)
      .servedModels(gateway.catalog.prices.map((p) => p.pattern))
      .filter(({ id }) => modelAllowed(principal, id))
    const now = new Date()
    if (request.header('anthropic-version')) {
      const data = models.map(({ id }) => anthropicModel(id, now))
      return response.json({ data, has_more: false, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null })
    }
    return response.json({ object: 'list', data: models.map(({ id, provider }) => openaiModel(gateway, principal, id, provider, now)) })
  }

  /** One model: listed by a channel, or served through a glob or the prefix table. */
  async show({ principal, params, request, response }: HttpContext) {
    const id = (params['*'] as string[]).join('/')
    if (!modelAllowed(principal, id)) throw GatewayError.modelNotAllowed(id)
    const gateway = await app.container.make('gateway')
    const provider = providerServing(gateway.service.router(principal.plan), id)
    if (!provider) throw GatewayError.modelNotFound(id)
    const now = new Date()
    return response.json(request.header('anthropic-version') ? anthropicModel(id, now) : openaiModel(gateway, principal, id, provider, now))
  }
}

/** The provider kind of the first channel that would serve the model, or null when none would (Gemini's models.get asks too). */
export function providerServing(router: ChannelRouter, id: string): string | null {
  try {
    return router.route(id)[0]?.channel.provider ?? null
  } catch (error) {
    // Known but unavailable right now (every channel cooling down or disabled) is still a model.
    if (error instanceof GatewayError && error.code !== 'model_not_found') {
      return router.listedModels().find((m) => m.id === id)?.provider ?? 'gateway'
    }
    return null
  }
}

/**
 * OpenAI's model object, with what OpenRouter's `/models` adds and tools
 * that read it use (Cline, Roo Code, Open WebUI...): `pricing` (USD per
 * token as strings, the prices this key's plan pays) and `context_length`
 * when the family's is known. OpenAI's SDKs ignore fields they do not know.
 */
function openaiModel(gateway: Gateway, principal: Principal, id: string, provider: string, now: Date) {
  return {
    id,
    object: 'model',
    created: Math.floor(now.getTime() / 1000),
    owned_by: provider,
    pricing: openRouterPricing(gateway, id, principal.plan),
    context_length: contextWindowOf(id),
  }
}

function anthropicModel(id: string, now: Date) {
  return { type: 'model', id, display_name: id, created_at: now.toISOString().replace(/\.\d{3}Z$/, 'Z') }
}
