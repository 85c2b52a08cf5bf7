import type { JsonOperation, JsonOperationCall } from '#gateway/json_operation'
import { promptUsage } from '#gateway/json_operation'
import { reportedCount } from '#gateway/metering/token_counts'
import { countTokens } from '#gateway/metering/tokenizer'
import type { TokenUsage } from '#gateway/types'

/** The model of a moderation request that names none (OpenAI's default). */
export const DEFAULT_MODERATION_MODEL = 'omni-moderation-latest'

/**
 * `POST /v1/moderations` on OpenAI-compatible channels, answer relayed.
 * OpenAI reports no usage (its moderation is free): the text input's tokens
 * are counted for the row, billed at the input price if the model has one,
 * plus its per-request price.
 */
export const MODERATIONS: JsonOperation = {
  operation: 'moderations',
  unsupported: 'offers moderations',
  usageOf: moderationUsage,
}

export function moderationUsage(answer: any, call: JsonOperationCall): TokenUsage | Promise<TokenUsage> {
  const tokens = reportedCount(answer?.usage?.prompt_tokens) ?? reportedCount(answer?.usage?.total_tokens)
  if (tokens !== null) return promptUsage(tokens, false)
  return countTokens(moderationText(call.body.input)).then((counted) => promptUsage(counted, true))
}

/** The text of an input: a string, strings, or the text parts of OpenAI's multimodal list (images carry none). */
function moderationText(input: unknown): string {
  if (typeof input === 'string') return input
  if (!Array.isArray(input)) return ''
  return input
    .map((item) => (typeof item === 'string' ? item : item?.type === 'text' && typeof item.text === 'string' ? item.text : ''))
    .filter((text) => text.length > 0)
    .join('\n')
}
