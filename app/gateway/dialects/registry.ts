import type { DialectName } from '#gateway/dialects/canonical'
import type { Dialect } from '#gateway/dialects/dialect'
import { anthropicMessages } from '#gateway/dialects/anthropic_messages/index'
import { openAiChat } from '#gateway/dialects/openai_chat/index'
import { openAiResponses } from '#gateway/dialects/openai_responses/index'

const DIALECTS: Partial<Record<DialectName, Dialect>> = {
  openai_chat: openAiChat,
  anthropic_messages: anthropicMessages,
  openai_responses: openAiResponses,
}

export function dialectOf(name: DialectName): Dialect {
  const dialect = DIALECTS[name]
  if (!dialect) throw new Error(`No dialect ${name}`)
  return dialect
}
