import { GatewayError } from '#exceptions/gateway_error'

/** The width of `usage_records.model` and `monthly_usage.model` */
export const MAX_MODEL_LENGTH = 200

/**
 * Refuses a model name the usage row could not store, before any upstream is
 * called: a request whose row fails to write would be served and never
 * billed. PostgreSQL text takes no NUL, JSON for Postgres no lone surrogate;
 * other control characters have no business in a model name either.
 */
export function assertStorableModel(model: string) {
  if (model.length > MAX_MODEL_LENGTH) {
    throw GatewayError.invalidRequest(`model: must be at most ${MAX_MODEL_LENGTH} characters`, 'invalid_model')
  }
  // Blank (" "): no model has such a name, and the prefix table would route it to a default channel.
  if (model.length > 0 && model.trim() === '') throw GatewayError.invalidRequest('model: must not be blank', 'invalid_model')
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(model) || !model.isWellFormed()) {
    throw GatewayError.invalidRequest('model: contains characters that are not allowed', 'invalid_model')
  }
}
