import { fileText, resultText, type CanonicalRequest, type FilePart } from '#gateway/dialects/canonical'
import { countTokens } from '#gateway/metering/tokenizer'

/** Tokens of a canonical prompt: its text (plain-text documents' too) plus a few tokens of framing per message. */
export async function countCanonicalPrompt(request: CanonicalRequest): Promise<number> {
  let text = request.system.map((p) => p.text).join('\n')
  let total = 3
  for (const message of request.messages) {
    total += 3
    for (const part of message.content) {
      if (part.type === 'text' || part.type === 'reasoning') text += part.text
      else if (part.type === 'tool_call') text += part.name + part.arguments
      else if (part.type === 'file') text += documentText(part)
      else if (part.type === 'tool_result') {
        text += resultText(part.content)
        if (typeof part.content !== 'string') for (const p of part.content) if (p.type === 'file') text += documentText(p)
      }
    }
  }
  for (const tool of request.tools) text += tool.name + (tool.description ?? '') + JSON.stringify(tool.parameters ?? {})
  return total + (await countTokens(text))
}

/** A plain-text document's text; binary attachments (PDF, audio), like images, are not counted here. */
function documentText(part: FilePart): string {
  return (part.filename ?? '') + (fileText(part) ?? '')
}
