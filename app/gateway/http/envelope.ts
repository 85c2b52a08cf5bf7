import { errors } from '@vinejs/vine'
import { GatewayError } from '#exceptions/gateway_error'
import type { EnvelopeValidator } from '#validators/plain_envelope'

/**
 * Checks a body against its endpoint's envelope and maps failures to the
 * error table (missing_model first). A plainly valid body (the validator's
 * `plainlyValid`) is accepted at once, with no promise to wait for; any other
 * body goes to the compiled VineJS validator, which accepts it or writes the
 * error message.
 */
export function validateEnvelope(validator: EnvelopeValidator, body: Record<string, any>): void | Promise<void> {
  if (typeof body.model !== 'string' || body.model.length === 0) {
    // Absent or empty: required. There but not a string (5, ["a"]): saying "required" would puzzle.
    if (body.model === undefined || body.model === null || body.model === '') throw GatewayError.missingModel()
    throw GatewayError.invalidRequest(`model: must be a string, the model's name (got ${kindOf(body.model)})`, 'invalid_model')
  }
  if (validator.plainlyValid?.(body)) return
  return runValidator(validator, body)
}

/** The same for a body whose model is not in it (Gemini: the model is in the path). */
export function validateShape(validator: EnvelopeValidator, body: Record<string, any>): void | Promise<void> {
  if (validator.plainlyValid?.(body)) return
  return runValidator(validator, body)
}

async function runValidator(validator: EnvelopeValidator, body: Record<string, any>): Promise<void> {
  try {
    await validator.validate(body)
  } catch (error) {
    if (error instanceof errors.E_VALIDATION_ERROR) {
      const first = (error.messages as Array<{ field: string; message: string }>)[0]
      throw GatewayError.invalidRequest(first ? `${first.field}: ${first.message}` : 'Invalid request body')
    }
    throw error
  }
}

function kindOf(value: unknown): string {
  return Array.isArray(value) ? 'an array' : typeof value === 'object' ? 'an object' : `a ${typeof value}`
}
