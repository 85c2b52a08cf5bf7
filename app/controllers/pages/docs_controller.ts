import type { HttpContext } from '@adonisjs/core/http'
import app from '@adonisjs/core/services/app'
import { signedInUser } from '#services/signed_in_user'
import ApiKey from '#models/api_key'
import { endpointDocs, MODEL_MARK, toolGuides, KEY_ENV } from '#services/docs_snippets'
import { modelCatalogue } from '#services/model_catalogue'
import { defaultPlan } from '#actions/set_default_plan'
import { GATEWAY_ERRORS } from '#services/gateway_errors'

/** Shown when the catalogue has no model of a kind (no channel lists one by name). */
const FALLBACK_MODELS = { chat: 'gpt-4o-mini', embedding: 'text-embedding-3-small', image: 'gpt-image-1', rerank: 'jina-reranker-v2-base-multilingual' }

/** The base URL the visitor reached (proxy headers only from TRUSTED_PROXIES). */
export function requestBaseUrl(request: HttpContext['request']) {
  return `${request.protocol()}://${request.host()}`
}

export default class DocsController {
  /**
   * GET /docs: base URL, authentication, every endpoint with curl / Python /
   * JavaScript snippets, model tags (the visitor's own models when logged
   * in), errors, rate limits, tool guides, live health.
   */
  async show(ctx: HttpContext) {
    const { request, view } = ctx
    const gateway = await app.container.make('gateway')
    const user = await signedInUser(ctx)
    // The shared layout shows who is signed in and the logout button.
    if (user) view.share({ currentUser: user })
    const plan = user?.planId ? (gateway.catalog.plans.get(user.planId) ?? null) : null
    // A visitor sees the models of the plan registration gives (channel groups: the channels open to it), as /pricing does.
    const reachedBy = user ? plan : (gateway.catalog.plans.get(Number((await defaultPlan())?.id)) ?? null)
    const models = modelCatalogue(gateway, reachedBy, user ? (plan?.allowedModels ?? ['*']) : null)
    const chatModels = models.filter((m) => m.kind === 'chat').map((m) => m.id)
    const asked = request.qs().model
    const model = typeof asked === 'string' && chatModels.includes(asked) ? asked : (chatModels[0] ?? FALLBACK_MODELS.chat)
    const base = requestBaseUrl(request)
    const endpoints = endpointDocs({
      base,
      embeddingModel: models.find((m) => m.kind === 'embedding')?.id ?? FALLBACK_MODELS.embedding,
      imageModel: models.find((m) => m.kind === 'image')?.id ?? FALLBACK_MODELS.image,
      rerankModel: models.find((m) => m.kind === 'rerank')?.id ?? FALLBACK_MODELS.rerank,
    })
    const keys = user
      ? await ApiKey.query().where('user_id', user.id).whereNull('revoked_at').orderBy('id', 'desc').limit(5)
      : []
    return view.render('pages/docs/show', {
      base,
      model,
      modelMark: MODEL_MARK,
      keyEnv: KEY_ENV,
      chatModels,
      endpoints: endpoints.map((e) => ({
        ...e,
        rendered: Object.fromEntries(Object.entries(e.snippets).map(([lang, code]) => [lang, code.replaceAll(MODEL_MARK, model)])),
      })),
      guides: toolGuides(base, MODEL_MARK).map((g) => ({ ...g, rendered: g.code.replaceAll(MODEL_MARK, model) })),
      errors: GATEWAY_ERRORS,
      keyHints: keys.filter((k) => k.isActive).map((k) => ({ name: k.name, masked: k.masked })),
      loggedIn: !!user,
    })
  }
}
