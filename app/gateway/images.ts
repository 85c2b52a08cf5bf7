import type { JsonOperation } from '#gateway/json_operation'
import { imageHold } from '#gateway/metering/reservation'
import type { TokenUsage } from '#gateway/types'

/**
 * `POST /v1/images/generations` on channels that offer it (the OpenAI
 * family), relayed like the other one-shot JSON operations
 * (json_operation.ts): the body passes through (b64_json or url answers
 * alike), each image is billed at the model's per-image price, plus tokens
 * when the upstream reports them (gpt-image).
 */
export const IMAGES: JsonOperation = {
  operation: 'images',
  unsupported: 'generates images',
  usageOf: (answer) => imagesUsage(answer),
  imagesAsked: imageHold,
}

export function imagesUsage(answer: any): TokenUsage {
  const input = Number(answer?.usage?.input_tokens ?? 0) || 0
  const output = Number(answer?.usage?.output_tokens ?? 0) || 0
  return {
    promptTokens: input,
    completionTokens: output,
    totalTokens: input + output,
    cachedTokens: 0,
    reasoningTokens: 0,
    images: Array.isArray(answer?.data) ? answer.data.length : 0,
    estimated: false,
  }
}
