/**
 * Token counting for when the upstream reports no usage (a stream cut short,
 * a provider that omits it). Uses the o200k_base BPE (GPT-4o family) from
 * gpt-tokenizer; loaded on first use so the hot path never pays for it.
 */
type CountFn = (text: string) => number

let counter: CountFn | undefined
let loading: Promise<CountFn> | undefined

async function load(): Promise<CountFn> {
  if (counter) return counter
  loading ??= import('gpt-tokenizer/encoding/o200k_base').then((mod) => {
    counter = (text: string) => (text ? mod.countTokens(text) : 0)
    return counter
  })
  return loading
}

export async function countTokens(text: string): Promise<number> {
  return (await load())(text)
}

/** Tokens of a chat prompt: content text of every message plus the per-message framing OpenAI bills. */
export async function countChatPromptTokens(messages: unknown): Promise<number> {
  if (!Array.isArray(messages)) return 0
  const count = await load()
  let total = 3
  for (const message of messages) {
    total += 3
    if (!message || typeof message !== 'object') continue
    const m = message as Record<string, unknown>
    total += count(textOf(m.content))
    if (typeof m.name === 'string') total += count(m.name) + 1
    if (Array.isArray(m.tool_calls)) {
      for (const call of m.tool_calls as any[]) {
        total += count(String(call?.function?.name ?? '')) + count(String(call?.function?.arguments ?? ''))
      }
    }
  }
  return total
}

/** Text of a content field: a string, or the text parts of an array of parts. */
export function textOf(content: unknown): string {
  if (typeof content === 'string') return content
  if (!Array.isArray(content)) return ''
  let text = ''
  for (const part of content) {
    if (part && typeof part === 'object' && typeof (part as any).text === 'string') {
      text += (part as any).text
    }
  }
  return text
}
