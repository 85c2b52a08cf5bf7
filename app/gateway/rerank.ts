import type { JsonOperation, JsonOperationCall } from '#gateway/json_operation'
import { promptUsage } from '#gateway/json_operation'
import { reportedCount } from '#gateway/metering/token_counts'
import { countTokens } from '#gateway/metering/tokenizer'
import type { TokenUsage } from '#gateway/types'

/**
 * `POST /v1/rerank` (`/v2/rerank`, `/rerank`): the Jina / Cohere body passes
 * through to `{base}/rerank` of an OpenAI-compatible channel (vLLM,
 * Infinity, TEI, SiliconFlow, Jina, Cohere v2). Billed as prompt tokens at the
 * input price, plus the per-request price times Cohere's search units.
 */
export const RERANK: JsonOperation = {
  operation: 'rerank',
  unsupported: 'offers rerank',
  usageOf: rerankUsage,
}

/**
 * Tokens as Jina, vLLM and SiliconFlow report them (`usage.prompt_tokens` /
 * `total_tokens`), or Cohere's `meta.billed_units.input_tokens`
 * (SiliconFlow's `meta.tokens`); else counted over query and documents.
 * Cohere's `search_units`, when reported, are the units of the per-request price.
 */
export function rerankUsage(answer: any, call: JsonOperationCall): TokenUsage | Promise<TokenUsage> {
  const billed = answer?.meta?.billed_units
  const tokens =
    reportedCount(answer?.usage?.prompt_tokens) ??
    reportedCount(answer?.usage?.total_tokens) ??
    reportedCount(billed?.input_tokens) ??
    reportedCount(answer?.meta?.tokens?.input_tokens)
  const searchUnits = reportedCount(billed?.search_units)
  const units = searchUnits !== null && searchUnits > 0 ? searchUnits : undefined
  if (tokens !== null) return promptUsage(tokens, false, units)
  return countTokens(rerankText(call.body)).then((counted) => promptUsage(counted, true, units))
}

/** The query and the documents' text, as the tokenizer reads them. */
function rerankText(body: Record<string, any>): string {
  const documents: unknown[] = Array.isArray(body.documents) ? body.documents : []
  const texts = documents.map((d) => (typeof d === 'string' ? d : typeof (d as any)?.text === 'string' ? (d as any).text : ''))
  return [typeof body.query === 'string' ? body.query : '', ...texts].join('\n')
}
