import { resultText, type CanonicalRequest } from '#gateway/dialects/canonical'
import { countTokens } from '#gateway/metering/tokenizer'

/** Tokens of a canonical prompt: its text plus a few tokens of framing per message. */
export async function countCanonicalPrompt(request: CanonicalRequest): Promise<number> {
  let text = request.system.map((p) => p.text).join('\n')
  let total = 3
  for (const message of request.messages) {
    total += 3
    for (const part of message.content) {
      if (part.type === 'text' || part.type === 'reasoning') text += part.text
      else if (part.type === 'tool_call') text += part.name + part.arguments
      else if (part.type === 'tool_result') text += resultText(part.content)
    }
  }
  for (const tool of request.tools) text += tool.name + (tool.description ?? '') + JSON.stringify(tool.parameters ?? {})
  return total + (await countTokens(text))
}

