/**
 * Every error the gateway answers with. It carries the HTTP status and the
 * stable `code` from the error table; the exception handler renders it in the
 * wire format of the endpoint that was called (OpenAI, Anthropic, Google).
 */
export type GatewayErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'permission_error'
  | 'not_found_error'
  | 'insufficient_quota'
  | 'rate_limit_error'
  | 'upstream_error'
  | 'service_unavailable'
  | 'server_error'

export class GatewayError extends Error {
  /** Extra response headers (Retry-After, x-ratelimit-*) */
  headers?: Record<string, string>
  /** When set, the upstream's own error body, relayed as-is to a same-format client */
  upstreamBody?: Buffer
  /** The request parameter at fault, when one is (OpenAI's `error.param`) */
  param?: string

  constructor(
    public status: number,
    public code: string,
    message: string,
    public type: GatewayErrorType = 'invalid_request_error'
  ) {
    super(message)
    this.name = 'GatewayError'
  }

  static invalidApiKey(message = 'Missing or invalid API key') {
    return new GatewayError(401, 'invalid_api_key', message, 'authentication_error')
  }

  /** The key is limited to addresses its owner listed (api_keys.allowed_ips) and this one is not among them. */
  static ipNotAllowed(address: string | undefined) {
    // Behind a trusted proxy the address is X-Forwarded-For text the client wrote: cut to an address's length.
    const seen = address ? address.slice(0, 64) : 'an unknown address'
    return new GatewayError(
      403,
      'ip_not_allowed',
      `This API key may not be used from ${seen}: the address is not on the key's IP allowlist`,
      'permission_error'
    )
  }

  static invalidJson(message = 'Request body is not valid JSON') {
    return new GatewayError(400, 'invalid_json', message)
  }

  static missingModel() {
    return new GatewayError(400, 'missing_model', 'The model field is required')
  }

  static invalidRequest(message: string, code = 'invalid_request', param?: string) {
    const error = new GatewayError(400, code, message)
    if (param) error.param = param
    return error
  }

  static modelNotAllowed(model: string) {
    return new GatewayError(
      403,
      'model_not_allowed',
      `Model '${model}' is not permitted on your plan or key`,
      'permission_error'
    )
  }

  static modelNotFound(model: string) {
    return new GatewayError(
      404,
      'model_not_found',
      `Model '${model}' was not found: no channel serves it`,
      'not_found_error'
    )
  }

  static tokenLimitExceeded(which: 'input' | 'output', limit: number) {
    return new GatewayError(
      429,
      'token_limit_exceeded',
      `Monthly ${which} token quota reached (${limit} tokens)`,
      'insufficient_quota'
    )
  }

  static insufficientBalance() {
    return new GatewayError(
      402,
      'insufficient_balance',
      'Insufficient balance: top up your account to use priced models',
      'insufficient_quota'
    )
  }

  static noAvailableChannel(model: string) {
    return new GatewayError(
      503,
      'no_available_channel',
      `No available upstream channel for model '${model}'`,
      'service_unavailable'
    )
  }

  /** Every channel for the model cools down after the provider's own 429 (Retry-After set by the caller). */
  static upstreamRateLimited(model: string, waitSeconds: number) {
    return new GatewayError(
      429,
      'upstream_rate_limited',
      `The upstream provider is rate limiting '${model}' on every channel that serves it; retry in ${waitSeconds} s`,
      'rate_limit_error'
    )
  }

  /**
   * The upstream answered 529 (Anthropic's overloaded_error). 503 here;
   * Anthropic-format clients get it as 529 (`inClientFormat`), the status
   * their SDKs and Claude Code retry.
   */
  static upstreamOverloaded(message: string) {
    return new GatewayError(503, 'upstream_overloaded', message, 'service_unavailable')
  }

  static providerError(message: string) {
    return new GatewayError(502, 'provider_error', message, 'upstream_error')
  }

  static internal() {
    return new GatewayError(500, 'internal_error', 'Unexpected gateway error', 'server_error')
  }
}
