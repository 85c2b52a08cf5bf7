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
 * (GatewayService.receiveBody); `checkForm` refuses what the endpoint cannot
 * take (fields given twice, a field sent as a file). Under an Azure
 * deployment path the deployment names the model (deployment_model.ts): on
 * the row before the upload is read, and as the form's `model` part (added
 * or replaced), as a JSON body gets it: an OpenAI-compatible upstream reads
 * that part.
 */
export async function readUploadForm(
  service: Pick<GatewayService, 'receiveBody'>,
  call: ApiCall,
  endpoint: string,
  account: RequestAccount,
  fields: string,
  checkForm: (form: MultipartForm) => void
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
  checkForm(form)
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
