import type { HttpContext } from '@adonisjs/core/http'
import type { NextFn } from '@adonisjs/core/types/http'
import { safeParse } from '@poppinss/utils/json'
import { parseJsonObject, readRawBody } from '#gateway/http/raw_body'

/** A management call's body is a small JSON object (a user, a key, a channel) */
const MANAGEMENT_BODY_BYTES = 1024 * 1024

/**
 * The management API's body parser (/api/admin), in place of Adonis's: the
 * same bounded read and byte scan as /v1 (raw_body.ts, json_guard.ts), so a
 * body nested 100,000 levels deep is a 400 `json_too_deep` and a body that
 * is not the JSON it claims to be a 400 `invalid_json`, where Adonis's parser
 * overflowed the stack or failed to inflate it (500s). Prototype poisoning
 * (`__proto__`, `constructor.prototype`) is refused as Adonis's parser does.
 * An empty body is `{}` (DELETE, POST .../test).
 */
export default class ManagementBodyMiddleware {
  async handle(ctx: HttpContext, next: NextFn) {
    const method = ctx.request.method()
    if (method !== 'GET' && method !== 'HEAD') {
      const raw = await readRawBody(ctx.request.request, ctx.response.response, MANAGEMENT_BODY_BYTES)
      if (raw.length > 0) ctx.request.updateBody(parseJsonObject(raw, safeParse))
    }
    return next()
  }
}
