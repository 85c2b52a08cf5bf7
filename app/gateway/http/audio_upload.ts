import { GatewayError } from '#exceptions/gateway_error'
import type { TranscriptionCall } from '#gateway/audio/audio'
import { fieldValue, type MultipartForm, partNamed } from '#gateway/http/multipart'
import { readUploadForm } from '#gateway/http/upload_form'
import type { ApiCall } from '#gateway/http/generation_request'
import { assertStorableModel } from '#gateway/http/model_name'
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
  const { rawBody, form, contentType } = await readUploadForm(service, call, endpoint, account, 'file and model', refuseRepeatedFields)
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
