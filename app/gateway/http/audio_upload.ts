import { GatewayError } from '#exceptions/gateway_error'
import type { TranscriptionCall } from '#gateway/audio/audio'
import {
  boundaryOf,
  fieldValue,
  MultipartError,
  type MultipartForm,
  partNamed,
  readMultipart,
  withFieldValue,
} from '#gateway/http/multipart'
import { deploymentName } from '#gateway/http/deployment_model'
import { bodyLimitFor } from '#gateway/http/body_limits'
import type { ApiCall } from '#gateway/http/generation_request'
import { assertStorableModel } from '#gateway/http/model_name'
import { readRawBody } from '#gateway/http/raw_body'
import type { RequestAccount } from '#gateway/metering/request_account'
import type { GatewayService } from '#gateway/gateway_service'

/**
 * Reads a transcription or translation upload: the multipart body's bytes
 * (bounded by AUDIO_MAX_MB, the instance budget and the upload timeout, as
 * every body), then only the fields the gateway needs. No JSON parsing; the
 * bytes go upstream as sent.
 */
export async function readAudioUpload(
  service: Pick<GatewayService, 'receiveBody'>,
  call: ApiCall,
  endpoint: string,
  account: RequestAccount
): Promise<TranscriptionCall> {
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
  // Azure's deployment path names the model (deployment_model.ts): checked before the upload is read.
  const deployment = call.deployment === undefined ? undefined : deploymentName(call.deployment)
  if (deployment !== undefined) account.model = deployment
  let rawBody = await service.receiveBody(readRawBody(call.req, call.res, bodyLimitFor(endpoint)))
  let form = readForm(rawBody, boundary)
  refuseRepeatedFields(form)
  if (deployment !== undefined && fieldValue(rawBody, form, 'model') !== deployment) {
    // The form then names the deployment, as a JSON body does: an OpenAI-compatible upstream reads the model part.
    rawBody = withFieldValue(rawBody, form, 'model', deployment)
    form = readForm(rawBody, boundary)
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

function readForm(rawBody: Buffer, boundary: string): MultipartForm {
  try {
    return readMultipart(rawBody, boundary)
  } catch (error) {
    if (error instanceof MultipartError) throw GatewayError.invalidRequest(`Malformed multipart body: ${error.message}`, 'invalid_multipart')
    throw error
  }
}

/** The parts the gateway reads: authorised, billed and relayed by their first occurrence */
const READ_FIELDS = ['model', 'stream', 'file']
/** Of those, the text fields: read only as text (fieldValue skips a file part) */
const TEXT_FIELDS = new Set(['model', 'stream'])

/**
 * A form that names a field the gateway reads twice is refused, as a JSON
 * body with a key twice is (json_guard.ts): the gateway reads the first
 * `model`, a server reading the last would serve a model the key was not
 * authorised or billed for (and the second `stream` or `file` would be
 * answered in a shape, or for a file, the gateway did not account). So is a
 * text field sent as a file part, as image uploads refuse it
 * (image_upload.ts): the gateway does not read it as the field, an upstream
 * may (a `stream` file read as true upstream would answer an SSE stream the
 * gateway accounts as one JSON answer).
 */
function refuseRepeatedFields(form: MultipartForm) {
  for (const name of READ_FIELDS) {
    let seen = 0
    for (const part of form.parts) {
      if (part.name !== name) continue
      if (++seen > 1) throw GatewayError.invalidRequest(`The form has more than one '${name}' part`, 'duplicate_field')
      if (part.filename !== null && TEXT_FIELDS.has(name)) {
        throw GatewayError.invalidRequest(`'${name}' must be a text field, not a file`, 'invalid_multipart', name)
      }
    }
  }
}
