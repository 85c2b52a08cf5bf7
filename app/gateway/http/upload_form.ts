import { GatewayError } from '#exceptions/gateway_error'
import { boundaryOf, fieldValue, MultipartError, type MultipartForm, readMultipart, withFieldValue } from '#gateway/http/multipart'
import { deploymentName } from '#gateway/http/deployment_model'
import { bodyLimitFor } from '#gateway/http/body_limits'
import type { ApiCall } from '#gateway/http/generation_request'
import { readRawBody } from '#gateway/http/raw_body'
import type { RequestAccount } from '#gateway/metering/request_account'
import type { GatewayService } from '#gateway/gateway_service'

/** A multipart upload read: its bytes as sent (the deployment's model part aside) and where its parts are. */
export interface UploadForm {
  rawBody: Buffer
  form: MultipartForm
  contentType: string
}

/**
 * Reads a multipart upload (audio transcriptions, image edits and
 * variations): refused unread without a boundary (`fields` names what the
 * endpoint takes), the bytes bounded by the endpoint's limit, the instance
 * budget and the upload timeout, outside the in-flight cap while they arrive
 * (GatewayService.receiveBody); a field the gateway reads given twice, or a
 * text field sent as a file, is refused (refuseAmbiguousFields). Under an Azure
 * deployment path the deployment names the model (deployment_model.ts): on
 * the row before the upload is read, and as the form's `model` part (added
 * or replaced), as a JSON body gets it: an OpenAI-compatible upstream reads
 * that part.
 */
export async function readUploadForm(
  service: Pick<GatewayService, 'receiveBody'>,
  call: ApiCall,
  endpoint: string,
  /** Named the deployment's model under an Azure path (the Files API has no account: nothing is metered per upload) */
  account: Pick<RequestAccount, 'model'>,
  fields: string,
  read: ReadFields
): Promise<UploadForm> {
  const contentType = call.req.headers['content-type'] ?? ''
  const boundary = boundaryOf(contentType)
  if (boundary === null) {
    const error = GatewayError.invalidRequest(`This endpoint takes a multipart/form-data body (fields ${fields}), as OpenAI does`, 'invalid_content_type')
    // Refused unread: the connection closes after the answer so the upload stops.
    error.headers = { connection: 'close' }
    throw error
  }
  const deployment = call.deployment === undefined ? undefined : deploymentName(call.deployment)
  if (deployment !== undefined) account.model = deployment
  let rawBody = await service.receiveBody(readRawBody(call.req, call.res, bodyLimitFor(endpoint)))
  let form = readForm(rawBody, boundary)
  refuseAmbiguousFields(form, read)
  if (deployment !== undefined && fieldValue(rawBody, form, 'model') !== deployment) {
    rawBody = withFieldValue(rawBody, form, 'model', deployment)
    form = readForm(rawBody, boundary)
  }
  return { rawBody, form, contentType }
}

function readForm(rawBody: Buffer, boundary: string): MultipartForm {
  try {
    return readMultipart(rawBody, boundary)
  } catch (error) {
    if (error instanceof MultipartError) throw GatewayError.invalidRequest(`Malformed multipart body: ${error.message}`, 'invalid_multipart')
    throw error
  }
}

/** The parts an endpoint reads (authorised, billed and relayed by their first occurrence), and which of them are text */
export interface ReadFields {
  all: readonly string[]
  text: ReadonlySet<string>
}

/**
 * A form that names a field the gateway reads twice is refused, as a JSON
 * body with a key twice is (json_guard.ts): the gateway reads the first
 * `model`, a server reading the last would serve a model the key was not
 * authorised or billed for (and a second `stream`, `n` or file would be
 * answered in a shape, count or for a file the gateway did not account). So
 * is a text field sent as a file part: the gateway does not read it as the
 * field, an upstream may (a `stream` file read as true upstream would answer
 * an SSE stream the gateway accounts as one JSON answer).
 */
function refuseAmbiguousFields(form: MultipartForm, read: ReadFields) {
  for (const name of read.all) {
    let seen = 0
    for (const part of form.parts) {
      if (part.name !== name) continue
      if (++seen > 1) throw GatewayError.invalidRequest(`The form has more than one '${name}' part`, 'duplicate_field')
      if (part.filename !== null && read.text.has(name)) {
        throw GatewayError.invalidRequest(`'${name}' must be a text field, not a file`, 'invalid_multipart', name)
      }
    }
  }
}
