import type { IncomingHttpHeaders } from 'node:http'
import type { ChannelInfo } from '#gateway/types'

/** A ready-to-send upstream HTTP request. */
export interface UpstreamRequest {
  /** Default POST */
  method?: 'GET' | 'POST'
  origin: string
  path: string
  headers: Record<string, string>
  body: string | Buffer
}

/**
 * What a provider adapter does: turn a request in its dialect into an
 * upstream HTTP call for one channel. Reading the response (and its usage)
 * belongs to the dialect's relay, shared by every provider of that dialect.
 */
export interface ProviderAdapter {
  /** Wire dialect the upstream speaks */
  readonly dialect: 'openai'
  chatCompletions(channel: ChannelInfo, body: string | Buffer, clientHeaders: IncomingHttpHeaders): UpstreamRequest
  /** GET path for listing upstream models (health checks, admin) */
  modelsPath(channel: ChannelInfo): UpstreamRequest
}

/** Splits a base URL into the pool origin and the path prefix requests are appended to. */
export function splitBaseUrl(baseUrl: string): { origin: string; basePath: string } {
  const url = new URL(baseUrl)
  return { origin: url.origin, basePath: url.pathname.replace(/\/+$/, '') }
}
