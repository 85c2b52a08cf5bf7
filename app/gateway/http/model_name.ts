import { GatewayError } from '#exceptions/gateway_error'

/** The width of `usage_records.model` and `monthly_usage.model` */
export const MAX_MODEL_LENGTH = 200

/**
 * What makes a model name one the usage row could not store (or that names
 * no model at all), or null for a good one. PostgreSQL text takes no NUL,
 * JSON for Postgres no lone surrogate; other control characters have no
 * business in a model name either. Blank (" "): no model has such a name,
 * and the prefix table would route it to a default channel.
 */
export function modelNameProblem(model: string): string | null {
  if (model.length > MAX_MODEL_LENGTH) return `must be at most ${MAX_MODEL_LENGTH} characters`
  if (model.length > 0 && model.trim() === '') return 'must not be blank'
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(model) || !model.isWellFormed()) return 'contains characters that are not allowed'
  return null
}

/**
 * Refuses a model name the usage row could not store, before any upstream is
 * called: a request whose row fails to write would be served and never
 * billed.
 */
export function assertStorableModel(model: string) {
  const problem = modelNameProblem(model)
  if (problem !== null) throw GatewayError.invalidRequest(`model: ${problem}`, 'invalid_model')
}
