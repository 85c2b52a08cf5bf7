import type { IncomingHttpHeaders } from 'node:http'

/**
 * `/v1/files` is OpenAI's Files API (batch input files, batches/files_api.ts)
 * and Anthropic's (anthropic_files_api.ts) at the same paths. Anthropic's
 * SDKs always send `anthropic-version` (and `anthropic-beta: files-api-...`
 * on these calls); OpenAI's never do. `x-api-key` alone does not tell them
 * apart: the gateway takes its keys there for OpenAI-format calls too.
 */
export function isAnthropicFilesCall(headers: IncomingHttpHeaders): boolean {
  return headers['anthropic-version'] !== undefined || headers['anthropic-beta'] !== undefined
}
