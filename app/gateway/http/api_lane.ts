import type { IncomingMessage, ServerResponse } from 'node:http'
import logger from '@adonisjs/core/services/logger'
import { authenticate } from '#gateway/auth/authenticate'
import { POST_ENDPOINTS } from '#gateway/http/api_endpoints'
import { reportApiError, sendApiError } from '#gateway/http/api_errors'
import { azureEndpoint } from '#gateway/http/azure_endpoints'
import { engineEndpoint } from '#gateway/http/engine_endpoints'
import { continueIfAwaited } from '#gateway/http/expect_continue'
import { gatewayInstance, type ApiCall } from '#gateway/http/generation_request'
import type { Gateway } from '#gateway/gateway'

type NodeHandler = (req: IncomingMessage, res: ServerResponse) => unknown

/**
 * The API lane: the Node request handler in front of the Adonis router.
 *
 * The generation endpoints (`POST /v1/chat/completions`, `/v1/messages`,
 * `/v1/responses`, embeddings, images, rerank, moderations, count_tokens; their
 * aliases without /v1, under Google's OpenAI compatibility base `/v1beta/openai/`
 * and OpenRouter's `/api/v1/`,
 * Azure OpenAI's `/openai/...` paths and OpenAI's legacy `/v1/engines/{model}/...`) are the hot path and
 * need nothing of the framework's request pipeline: no route params, no body
 * parser, no session, no HttpContext. For those, one map lookup on the path
 * replaces the router, the middleware runner, the context and its
 * request/response wrappers; the lane then runs what the router would have:
 * key auth and rate limits (`authenticate`, the API key middleware's code),
 * the endpoint (the controllers' code, `api_endpoints.ts`), and on error
 * the same answer and log line as the exception handler (`api_errors.ts`).
 * Every other request (pages, GET /v1/models, /v1beta, 404s) goes to Adonis
 * unchanged.
 *
 * `API_LANE=false` sends everything through the router (for A/B measurement).
 */
export function withApiLane(adonis: NodeHandler, enabled = process.env.API_LANE !== 'false'): NodeHandler {
  if (!enabled) {
    return (req, res) => {
      continueIfAwaited(req, res)
      return adonis(req, res)
    }
  }
  let gateway: Gateway | undefined
  return (req, res) => {
    if (req.method === 'POST') {
      const url = req.url ?? '/'
      const query = url.indexOf('?')
      const path = query < 0 ? url : url.slice(0, query)
      const endpoint = POST_ENDPOINTS.get(path)
      if (endpoint) {
        void serve(endpoint, path, req, res, undefined)
        return
      }
      // Azure OpenAI's paths (azure_endpoints.ts), OpenAI's legacy engine paths (engine_endpoints.ts):
      // looked at only when the /v1 map missed.
      const named = path.startsWith('/openai/') ? azureEndpoint(path) : engineEndpoint(path)
      if (named !== undefined) {
        void serve(named.endpoint, path, req, res, named.deployment)
        return
      }
    }
    // Adonis reads bodies its own way (pages, webhooks): a client waiting to send one is told to now.
    continueIfAwaited(req, res)
    return adonis(req, res)
  }

  async function serve(
    endpoint: (call: ApiCall) => Promise<void>,
    path: string,
    req: IncomingMessage,
    res: ServerResponse,
    deployment: string | undefined
  ) {
    try {
      gateway ??= await gatewayInstance()
      const principal = await authenticate(gateway, req, res)
      await endpoint(deployment === undefined ? { principal, req, res } : { principal, req, res, deployment })
      // What the router's response.finish() does for a handler that wrote nothing.
      if (!res.headersSent && !res.writableEnded) res.end()
    } catch (error) {
      try {
        reportApiError(error, logger)
        sendApiError(error, path, res)
      } catch (fatal) {
        // Nothing may escape a request handler; the client gets a bare 500.
        logger.error({ err: fatal }, 'API lane could not answer an error')
        if (!res.headersSent) res.writeHead(500)
        if (!res.writableEnded) res.end()
      }
    }
  }
}
