import type { HttpContext } from '@adonisjs/core/http'
import app from '@adonisjs/core/services/app'
import type { DialectName } from '#gateway/dialects/canonical'
import type { Gateway } from '#gateway/gateway'
import type { RequestAccount } from '#gateway/metering/request_account'
import { validateEnvelope, validateShape } from '#gateway/http/envelope'
import { parseJsonObject, readRawBody } from '#gateway/http/raw_body'
import { bodyLimitFor } from '#gateway/http/body_limits'
import { assertStorableModel } from '#gateway/http/model_name'

let gateway: Gateway | undefined

export async function gatewayInstance(): Promise<Gateway> {
  gateway ??= await app.container.make('gateway')
  return gateway
}

export interface ParsedBody {
  rawBody: Buffer
  body: Record<string, any>
}

/**
 * The HTTP glue every API endpoint shares: open the request's account, read
 * the raw body, validate the thin envelope, run the work; any failure before
 * the answer is accounted once and rethrown for the exception handler.
 */
export async function withAccount(
  ctx: HttpContext,
  endpoint: string,
  validator: { validate: (data: any) => Promise<unknown> },
  work: (gateway: Gateway, account: RequestAccount, parsed: ParsedBody) => Promise<void>,
  modelFromPath?: string
): Promise<void> {
  const gw = await gatewayInstance()
  const account = gw.service.openAccount(ctx.principal, endpoint)
  try {
    // A model in the path is checked before the body is read: nothing of it is needed to refuse.
    if (modelFromPath !== undefined) assertStorableModel(modelFromPath)
    const rawBody = await readRawBody(ctx.request.request, ctx.response.response, bodyLimitFor(endpoint))
    const body = parseJsonObject(rawBody)
    const model = modelFromPath ?? (typeof body.model === 'string' ? body.model : '')
    assertStorableModel(model)
    account.model = model
    if (modelFromPath === undefined) await validateEnvelope(validator, body)
    else await validateShape(validator, body)
    await work(gw, account, { rawBody, body })
  } catch (error) {
    account.fail(error)
    throw error
  }
}

/** A generation endpoint: the body goes to GatewayService.generate in the client's dialect. */
export function generate(
  ctx: HttpContext,
  endpoint: string,
  ingress: DialectName,
  validator: { validate: (data: any) => Promise<unknown> },
  options: { model?: string; stream?: boolean; jsonArray?: boolean } = {}
): Promise<void> {
  return withAccount(
    ctx,
    endpoint,
    validator,
    (gw, account, { rawBody, body }) =>
      gw.service.generate(
        {
          principal: ctx.principal,
          ingress,
          rawBody,
          body,
          model: options.model ?? body.model,
          stream: options.stream ?? body.stream === true,
          jsonArray: options.jsonArray,
          req: ctx.request.request,
          res: ctx.response.response,
        },
        account
      ),
    options.model
  )
}
