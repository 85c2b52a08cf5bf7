import type { DialectName } from '#gateway/dialects/canonical'
import type { Dialect } from '#gateway/dialects/dialect'
import { anthropicMessages } from '#gateway/dialects/anthropic_messages/index'
import { gemini } from '#gateway/dialects/gemini/index'
import { openAiChat } from '#gateway/dialects/openai_chat/index'
import { openAiResponses } from '#gateway/dialects/openai_responses/index'

const DIALECTS: Record<DialectName, Dialect> = {
  openai_chat: openAiChat,
  anthropic_messages: anthropicMessages,
  openai_responses: openAiResponses,
  gemini,
}

export function dialectOf(name: DialectName): Dialect {
  return DIALECTS[name]
}
