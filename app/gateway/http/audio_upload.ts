import { GatewayError } from '#exceptions/gateway_error'
import type { TranscriptionCall } from '#gateway/audio/audio'
import { fieldValue, partNamed } from '#gateway/http/multipart'
import { type ReadFields, readUploadForm } from '#gateway/http/upload_form'
import type { ApiCall } from '#gateway/http/generation_request'
import { assertStorableModel } from '#gateway/http/model_name'
import type { RequestAccount } from '#gateway/metering/request_account'
import type { GatewayService } from '#gateway/gateway_service'
import { admitModelLimit } from '#gateway/limits/admit_model_limit'

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
  const { rawBody, form, contentType } = await readUploadForm(service, call, endpoint, account, 'file and model', READ_FIELDS)
  const model = fieldValue(rawBody, form, 'model')
  if (model === undefined || model === '') throw GatewayError.missingModel()
  assertStorableModel(model)
  account.model = model
  // The key's own limit for this model (a transcription model is called here only: uncounted, its limit held nothing).
  await admitModelLimit(account, model, call.res)
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

/** The parts the gateway reads: authorised, billed and relayed by their first occurrence; of those, the text fields */
const READ_FIELDS: ReadFields = { all: ['model', 'stream', 'file'], text: new Set(['model', 'stream']) }
