import { GatewayError } from '#exceptions/gateway_error'
import type { TranscriptionCall } from '#gateway/audio/audio'
import { boundaryOf, fieldValue, MultipartError, partNamed, readMultipart } from '#gateway/audio/multipart'
import { bodyLimitFor } from '#gateway/http/body_limits'
import type { ApiCall } from '#gateway/http/generation_request'
import { assertStorableModel } from '#gateway/http/model_name'
import { readRawBody } from '#gateway/http/raw_body'
import type { RequestAccount } from '#gateway/metering/request_account'

/**
 * Reads a transcription or translation upload: the multipart body's bytes
 * (bounded by AUDIO_MAX_MB, the instance budget and the upload timeout, as
 * every body), then only the fields the gateway needs. No JSON parsing; the
 * bytes go upstream as sent.
 */
export async function readAudioUpload(call: ApiCall, endpoint: string, account: RequestAccount): Promise<TranscriptionCall> {
  const contentType = call.req.headers['content-type'] ?? ''
  const boundary = boundaryOf(contentType)
  if (boundary === null) {
    const error = GatewayError.invalidRequest(
      'This endpoint takes a multipart/form-data body (fields file and model), as OpenAI does',
      'invalid_content_type'
    )
    // Refused unread: the connection closes after the answer so the upload stops.
    error.headers = { connection: 'close' }
    throw error
  }
  const rawBody = await readRawBody(call.req, call.res, bodyLimitFor(endpoint))
  let form
  try {
    form = readMultipart(rawBody, boundary)
  } catch (error) {
    if (error instanceof MultipartError) throw GatewayError.invalidRequest(`Malformed multipart body: ${error.message}`, 'invalid_multipart')
    throw error
  }
  const model = fieldValue(rawBody, form, 'model')
  if (model === undefined || model === '') throw GatewayError.missingModel()
  assertStorableModel(model)
  account.model = model
  const file = partNamed(form, 'file')
  if (!file || file.filename === null) throw GatewayError.invalidRequest('file: an audio file part is required', 'missing_file')
  return {
    principal: call.principal,
    rawBody,
    form,
    contentType,
    model,
    stream: fieldValue(rawBody, form, 'stream') === 'true',
    req: call.req,
    res: call.res,
  }
}
