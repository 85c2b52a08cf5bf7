import { errors } from '@vinejs/vine'
import { GatewayError } from '#exceptions/gateway_error'

/** Runs a compiled envelope validator and maps failures to the error table (missing_model first). */
export async function validateEnvelope<T>(
  validator: { validate: (data: any) => Promise<T> },
  body: Record<string, any>
): Promise<T> {
  if (typeof body.model !== 'string' || body.model.length === 0) throw GatewayError.missingModel()
  try {
    return await validator.validate(body)
  } catch (error) {
    if (error instanceof errors.E_VALIDATION_ERROR) {
      const first = (error.messages as Array<{ field: string; message: string }>)[0]
      throw GatewayError.invalidRequest(first ? `${first.field}: ${first.message}` : 'Invalid request body')
    }
    throw error
  }
}

/** Runs a compiled validator over a body whose model is not in it (Gemini: the model is in the path). */
export async function validateShape<T>(validator: { validate: (data: any) => Promise<T> }, body: Record<string, any>): Promise<T> {
  try {
    return await validator.validate(body)
  } catch (error) {
    if (error instanceof errors.E_VALIDATION_ERROR) {
      const first = (error.messages as Array<{ field: string; message: string }>)[0]
      throw GatewayError.invalidRequest(first ? `${first.field}: ${first.message}` : 'Invalid request body')
    }
    throw error
  }
}
