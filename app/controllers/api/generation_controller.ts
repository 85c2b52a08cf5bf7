import type { HttpContext } from '@adonisjs/core/http'
import app from '@adonisjs/core/services/app'
import db from '@adonisjs/lucid/services/db'
import { GatewayError } from '#exceptions/gateway_error'
import { REQUEST_ID_PATTERN } from '#gateway/metering/request_id'


export default class GenerationController {
  /**
   * GET /v1/generation?id=<x-request-id>: one request's accounting, in
   * OpenRouter's shape (its /api/v1/generation), for apps that track the
   * exact cost of each call: tokens, cost, latency, model, and how it ended.
   * Only the calling key's own account's requests.
   */
  async show({ principal, request, response }: HttpContext) {
    const id = String(request.input('id') ?? '').trim()
    if (!REQUEST_ID_PATTERN.test(id)) {
      throw GatewayError.invalidRequest('id: give the x-request-id of a request (a UUID), as ?id=', 'invalid_request')
    }
    const gateway = await app.container.make('gateway')
    // A call that just ended may still be in the metering queue.
    await gateway.meter.drain()
    const row = await db
      .from('usage_records as u')
      .leftJoin('channels as c', 'c.id', 'u.channel_id')
      .where('u.request_id', id)
      .where('u.user_id', principal.user.id)
      .select('u.*', 'c.name as channel_name')
      .first()
    if (!row) throw new GatewayError(404, 'not_found', `No request ${id} in this account`)
    const latency = Number(row.latency_ms)
    const ttft = row.ttft_ms === null ? null : Number(row.ttft_ms)
    return response.json({
      data: {
        id: row.request_id,
        model: row.model,
        requested_model: row.requested_model,
        created_at: new Date(row.created_at).toISOString(),
        endpoint: row.endpoint,
        streamed: row.stream,
        status: row.status,
        error_code: row.error_code,
        cancelled: row.status === 499,
        cache_hit: row.cache_hit,
        provider_name: row.provider,
        upstream_model: row.served_model,
        total_cost: Number(row.cost),
        /** The exact charge, as a decimal string (total_cost is its float) */
        cost: trimZeros(String(row.cost)),
        tokens_prompt: row.prompt_tokens,
        tokens_completion: row.completion_tokens,
        native_tokens_cached: row.cached_tokens,
        native_tokens_reasoning: row.reasoning_tokens,
        images: row.images,
        /** Seconds of audio billed (transcriptions, translations) and characters (speech); null elsewhere */
        audio_seconds: row.audio_seconds === null ? null : Number(row.audio_seconds),
        characters: row.characters,
        /** Tokens counted by the gateway's tokenizer: the upstream reported none */
        estimated: row.estimated,
        latency,
        time_to_first_token: ttft,
        generation_time: ttft === null ? null : latency - ttft,
        attempts: row.attempts,
        /** The request's cost-attribution tags (x-gateway-tags, x-litellm-tags, metadata.tags); null when untagged */
        tags: row.tags ?? null,
      },
    })
  }
}

/** "0.000022000000" -> "0.000022" */
function trimZeros(decimal: string) {
  return decimal.includes('.') ? decimal.replace(/\.?0+$/, '') : decimal
}
