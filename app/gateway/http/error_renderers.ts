import type { IncomingHttpHeaders } from 'node:http'
import type { GatewayError } from '#exceptions/gateway_error'
import { isAnthropicFilesCall } from '#gateway/provider_files/files_wire'

/**
 * One gateway error, rendered in each wire format's own error shape.
 * The dialect is chosen by the endpoint the client called.
 */
export type ErrorDialect = 'openai' | 'anthropic' | 'google' | 'litellm'

/**
 * The error format of a path: Anthropic's under /v1/messages (and OpenRouter's
 * /api/v1/messages, where Claude Code set up by OpenRouter's guide calls), Google's under
 * /v1beta (but for Google's OpenAI compatibility base, /v1beta/openai/, whose
 * clients are the OpenAI SDKs) and for Gemini's calls under /v1, else OpenAI's.
 */
export function dialectForPath(path: string): ErrorDialect {
  if (path.startsWith('/v1/messages') || path.startsWith('/api/v1/messages')) return 'anthropic'
  if (path.startsWith('/v1beta')) return path.startsWith('/v1beta/openai/') ? 'openai' : 'google'
  // Gemini's Files API uploads (provider_files/gemini_files_api.ts) and downloads (batches/gemini_batches_api.ts)
  if (path.startsWith('/upload/v1beta/') || path.startsWith('/download/v1beta/')) return 'google'
  if (path.startsWith('/v1/models/') && isGeminiCall(path)) return 'google'
  if (isLiteLLMManagementPath(path)) return 'litellm'
  return 'openai'
}

/**
 * The error format of a routed request: its path's, except at `/v1/files`,
 * which is OpenAI's Files API and Anthropic's: Anthropic's for a call with
 * Anthropic's headers (anthropic_files_api.ts isAnthropicFilesCall), its
 * refusals before the controller (a bad key) included.
 */
export function dialectForRequest(path: string, headers: IncomingHttpHeaders): ErrorDialect {
  if (path.startsWith('/v1/files') && isAnthropicFilesCall(headers)) return 'anthropic'
  return dialectForPath(path)
}

/** LiteLLM's key, spend, user, customer, budget, team and organization management paths, its model health check and /utils/ (controllers/api/litellm/): errors in LiteLLM's shape. */
export function isLiteLLMManagementPath(path: string): boolean {
  return (
    path === '/health' ||
    path.startsWith('/health?') ||
    path.startsWith('/key/') ||
    path.startsWith('/spend/') ||
    path.startsWith('/user/') ||
    path.startsWith('/customer/') ||
    path.startsWith('/budget/') ||
    path.startsWith('/team/') ||
    path.startsWith('/organization/') ||
    path.startsWith('/global/spend/') ||
    path.startsWith('/utils/')
  )
}

/** LiteLLM's ProxyException types by status (its `error.type`) */
const LITELLM_TYPES: Record<number, string> = {
  400: 'bad_request_error',
  401: 'auth_error',
  403: 'auth_error',
  404: 'not_found_error',
  409: 'bad_request_error',
  413: 'bad_request_error',
  415: 'bad_request_error',
  429: 'rate_limit_error',
}

const GEMINI_METHODS = new Set(['generateContent', 'streamGenerateContent', 'countTokens', 'embedContent', 'batchEmbedContents', 'predict', 'batchGenerateContent', 'asyncBatchEmbedContent'])

/**
 * `/v1/models/{model}:{method}`: Gemini's native call under /v1 (@google/genai
 * with apiVersion 'v1'), as against OpenAI's `/v1/models/{model}`, whose
 * fine-tuned names have colons too (`ft:gpt-4o-mini:org::id`) but never end
 * in a Gemini method.
 */
function isGeminiCall(path: string): boolean {
  const query = path.indexOf('?')
  const bare = query < 0 ? path : path.slice(0, query)
  return GEMINI_METHODS.has(bare.slice(bare.lastIndexOf(':') + 1))
}

const ANTHROPIC_TYPES: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  402: 'billing_error',
  403: 'permission_error',
  404: 'not_found_error',
  408: 'timeout_error',
  413: 'request_too_large',
  429: 'rate_limit_error',
  500: 'api_error',
  502: 'api_error',
  503: 'overloaded_error',
  529: 'overloaded_error',
}

const GOOGLE_STATUSES: Record<number, string> = {
  400: 'INVALID_ARGUMENT',
  401: 'UNAUTHENTICATED',
  402: 'FAILED_PRECONDITION',
  403: 'PERMISSION_DENIED',
  404: 'NOT_FOUND',
  408: 'DEADLINE_EXCEEDED',
  409: 'ABORTED',
  429: 'RESOURCE_EXHAUSTED',
  499: 'CANCELLED',
  500: 'INTERNAL',
  501: 'UNIMPLEMENTED',
  502: 'UNAVAILABLE',
  503: 'UNAVAILABLE',
  504: 'DEADLINE_EXCEEDED',
}

/**
 * The error with the status the client's format gives it: an upstream's
 * overload (its 529) is 529 overloaded_error for Anthropic's clients (the
 * Anthropic SDKs and Claude Code retry 529 specifically), 503 for the others.
 * Applied once, before the error is metered and rendered, so the usage row
 * holds the status sent.
 */
export function inClientFormat(dialect: ErrorDialect, error: GatewayError): GatewayError {
  if (error.code === 'upstream_overloaded' && dialect === 'anthropic') error.status = 529
  return error
}

export function renderError(dialect: ErrorDialect, error: GatewayError): Record<string, unknown> {
  switch (dialect) {
    case 'anthropic':
      return {
        type: 'error',
        error: {
          type: ANTHROPIC_TYPES[error.status] ?? (error.status >= 500 ? 'api_error' : 'invalid_request_error'),
          message: error.message,
        },
      }
    case 'google':
      return {
        error: {
          code: error.status,
          message: error.message,
          status: GOOGLE_STATUSES[error.status] ?? (error.status >= 500 ? 'INTERNAL' : 'INVALID_ARGUMENT'),
        },
      }
    case 'litellm':
      // LiteLLM's proxy answers {"error": {message, type, param, code}} with the status as a string in `code`.
      return {
        error: {
          message: error.message,
          type: LITELLM_TYPES[error.status] ?? (error.status >= 500 ? 'internal_server_error' : 'bad_request_error'),
          param: error.param ?? null,
          code: String(error.status),
        },
      }
    default:
      return { error: { message: error.message, type: error.type, param: error.param ?? null, code: error.code } }
  }
}
