/**
 * The gateway's error codes (README "Errors"), in the order of the table.
 * Their meaning and how to fix each are translated:
 * errors.gateway.<code>.meaning / .fix in resources/lang.
 */
export const GATEWAY_ERRORS: Array<{ status: number; code: string }> = [
  { status: 401, code: 'invalid_api_key' },
  { status: 400, code: 'invalid_json' },
  { status: 400, code: 'missing_model' },
  { status: 400, code: 'invalid_tags' },
  { status: 400, code: 'invalid_end_user' },
  { status: 403, code: 'ip_not_allowed' },
  { status: 403, code: 'model_not_allowed' },
  { status: 403, code: 'end_user_blocked' },
  { status: 404, code: 'model_not_found' },
  { status: 402, code: 'insufficient_balance' },
  { status: 402, code: 'spend_limit_exceeded' },
  { status: 402, code: 'end_user_budget_exceeded' },
  { status: 429, code: 'token_limit_exceeded' },
  { status: 429, code: 'rate_limit_exceeded' },
  { status: 429, code: 'upstream_rate_limited' },
  { status: 502, code: 'provider_error' },
  { status: 503, code: 'upstream_overloaded' },
  { status: 503, code: 'no_available_channel' },
  { status: 503, code: 'overloaded' },
  { status: 503, code: 'shutting_down' },
  { status: 500, code: 'internal_error' },
]

export const GATEWAY_ERROR_CODES = new Set(GATEWAY_ERRORS.map((e) => e.code))
