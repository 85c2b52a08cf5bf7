import type { BodyDecoder } from '#gateway/providers/provider_adapter'
import { EventStreamDecoder } from '#gateway/providers/bedrock/event_stream'
import { errorEventOf } from '#gateway/providers/bedrock/bedrock_stream'
import { answerBudget, answerLimits, FREE_ANSWER_BYTES, UpstreamAnswersOverBudget, UpstreamAnswerTooLarge } from '#gateway/upstream/answer_limits'

/**
 * Bedrock's Converse answers as Anthropic's, so that the dispatcher, the
 * stream checks, the relays and metering treat a Converse model as any
 * bedrock (Anthropic-dialect) channel, and every client's encoder applies:
 *
 * - a whole answer (`{output: {message}, stopReason, usage}`) -> an Anthropic
 *   message, once the body is in (ConverseToAnthropicJson);
 * - `converse-stream`'s event stream (messageStart, contentBlockStart /
 *   Delta / Stop, messageStop, metadata) -> Anthropic's SSE as it arrives
 *   (ConverseToAnthropicSse). Converse states usage only in its last event
 *   (`metadata`), after the stop: message_start says 0 tokens, and the
 *   message_delta (stop reason and the whole usage) and message_stop are
 *   written when `metadata` comes, or at the end of the body without it.
 *
 * Usage: Converse's inputTokens, like Anthropic's input_tokens, leaves out
 * cacheReadInputTokens / cacheWriteInputTokens. Its outputTokens hold the
 * reasoning's with no count of their own (TokenUsage has none), so none is
 * made up.
 *
 * A request whose JSON schema answer went as a forced tool (`jsonTool`:
 * converse_request.ts) has that tool's call read back as the answer's text
 * block, and its `tool_use` stop as `end_turn` when no other tool was called.
 */

const STOP_REASONS: Record<string, string> = {
  end_turn: 'end_turn',
  tool_use: 'tool_use',
  max_tokens: 'max_tokens',
  stop_sequence: 'stop_sequence',
  guardrail_intervened: 'refusal',
  content_filtered: 'refusal',
  model_context_window_exceeded: 'model_context_window_exceeded',
}

export function anthropicStopOfConverse(reason: unknown): string {
  return STOP_REASONS[String(reason)] ?? 'end_turn'
}

/** Usage that says nothing (Anthropic's form, null counts): the gateway's own count is billed, as for any upstream that reports none */
const UNKNOWN_USAGE = Object.freeze({ input_tokens: null, output_tokens: null })

/**
 * Converse's usage as Anthropic's; null when it holds no count (no usage,
 * `usage: {}`): written as zeros, the answer was billed as free. A count
 * is handed on as reported (a negative or absurd one is judged where
 * Anthropic's usage is read, and estimated instead).
 */
export function anthropicUsageOfConverse(usage: any): Record<string, number> | null {
  const count = (value: unknown) => (typeof value === 'number' && Number.isFinite(value) ? Math.floor(value) : null)
  const input = count(usage?.inputTokens)
  const output = count(usage?.outputTokens)
  if (input === null && output === null) return null
  return {
    input_tokens: input ?? 0,
    output_tokens: output ?? 0,
    cache_read_input_tokens: count(usage?.cacheReadInputTokens) ?? 0,
    cache_creation_input_tokens: count(usage?.cacheWriteInputTokens) ?? 0,
  }
}

/** A Converse content block as Anthropic's; null for what has no Anthropic form (a citation, a guard's note). */
function anthropicBlockOf(block: any, jsonTool: string | null): Record<string, unknown> | null {
  if (typeof block?.text === 'string') return { type: 'text', text: block.text }
  if (block?.toolUse && jsonTool !== null && block.toolUse.name === jsonTool) {
    const input = block.toolUse.input
    return { type: 'text', text: typeof input === 'string' ? input : JSON.stringify(input ?? {}) }
  }
  if (block?.toolUse) {
    return { type: 'tool_use', id: block.toolUse.toolUseId, name: block.toolUse.name, input: toolInputOf(block.toolUse.input) }
  }
  const reasoning = block?.reasoningContent
  if (reasoning?.reasoningText) {
    return { type: 'thinking', thinking: reasoning.reasoningText.text ?? '', signature: reasoning.reasoningText.signature ?? '' }
  }
  if (typeof reasoning?.redactedContent === 'string') return { type: 'redacted_thinking', data: reasoning.redactedContent }
  return null
}

/**
 * A tool call's input as Anthropic's object. Converse's is a JSON document,
 * an object for a tool's schema; one sent as a string of JSON (a proxy's
 * re-encoding) is read, and anything else handed on as it is.
 */
function toolInputOf(input: unknown): unknown {
  if (input === undefined || input === null) return {}
  if (typeof input !== 'string') return input
  try {
    const parsed = JSON.parse(input)
    return parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) ? parsed : input
  } catch {
    return input
  }
}

/** The Anthropic message of a whole Converse answer. */
export function anthropicMessageOfConverse(answer: any, id: string, model: string, jsonTool: string | null = null): Record<string, unknown> {
  const content: any[] = Array.isArray(answer?.output?.message?.content) ? answer.output.message.content : []
  const blocks = content.map((block) => anthropicBlockOf(block, jsonTool)).filter((block) => block !== null)
  let stop = anthropicStopOfConverse(answer?.stopReason)
  // The answer tool's call is the answer: not a call for the client to make
  if (stop === 'tool_use' && jsonTool !== null && !blocks.some((block) => block.type === 'tool_use')) stop = 'end_turn'
  return {
    id,
    type: 'message',
    role: 'assistant',
    model,
    content: blocks,
    stop_reason: stop,
    stop_sequence: null,
    usage: anthropicUsageOfConverse(answer?.usage) ?? UNKNOWN_USAGE,
  }
}

/** The message id clients see: Bedrock's request id, which its logs and support know. */
export function converseMessageId(requestId: unknown): string {
  return `msg_bdrk_${typeof requestId === 'string' && requestId ? requestId : Date.now().toString(36)}`
}

/**
 * A whole Converse answer: kept until the body ends (within the gateway's
 * bound on a whole answer), then written as the Anthropic message. What it
 * holds past its first MB is taken from the instance's budget of answers
 * being read, as UpstreamBody.collect takes it (answer_limits.ts), and given
 * back when the exchange is over (dispose): held here, outside collect, a
 * slow answer's bytes were counted nowhere, and twenty of them could hold
 * 2.5 GB.
 */
export class ConverseToAnthropicJson implements BodyDecoder {
  #chunks: Buffer[] = []
  #bytes = 0
  /** Bytes taken from answerBudget */
  #taken = 0
  #disposed = false

  constructor(
    private id: string,
    private model: string,
    private jsonTool: string | null = null
  ) {}

  push(chunk: Buffer): Buffer | null {
    if (this.#disposed) return null
    this.#bytes += chunk.length
    if (this.#bytes > answerLimits.bodyBytes) throw new UpstreamAnswerTooLarge('The Converse answer', answerLimits.bodyBytes)
    if (this.#bytes > FREE_ANSWER_BYTES) {
      const more = this.#bytes - FREE_ANSWER_BYTES - this.#taken
      if (answerBudget.used + more > answerLimits.inflightBytes) throw new UpstreamAnswersOverBudget()
      answerBudget.used += more
      this.#taken += more
    }
    this.#chunks.push(chunk)
    return null
  }

  dispose(): void {
    this.#disposed = true
    this.#chunks = []
    answerBudget.used -= this.#taken
    this.#taken = 0
  }

  /** The Anthropic message; the budget is given back as it is handed on (its reader takes its own). */
  end(): Buffer | null {
    const text = Buffer.concat(this.#chunks).toString('utf8')
    this.#chunks = []
    // Not JSON: handed on as it is, for the dialect's check to refuse as any broken answer.
    let answer: unknown
    try {
      answer = JSON.parse(text)
    } catch {
      this.dispose()
      return Buffer.from(text)
    }
    const message = Buffer.from(JSON.stringify(anthropicMessageOfConverse(answer, this.id, this.model, this.jsonTool)))
    this.dispose()
    return message
  }
}

/** converse-stream's events as Anthropic SSE, as they arrive (only an unfinished frame is kept). */
export class ConverseToAnthropicSse implements BodyDecoder {
  #frames = new EventStreamDecoder()
  /** The Anthropic index of the open block, -1 when none is */
  #open = -1
  /** Converse's index of the open block */
  #openConverse = -1
  #nextIndex = 0
  #openType = ''
  #started = false
  /** messageStop's reason, written with the usage (metadata) */
  #stop: string | null = null
  #done = false
  /** Converse's index of the answer tool's call, written as text (-1: none yet) */
  #jsonIndex = -1
  /** A tool other than the answer tool was called: its tool_use stop stands */
  #calledTool = false

  constructor(
    private id: string,
    private model: string,
    private jsonTool: string | null = null
  ) {}

  push(chunk: Buffer): Buffer | null {
    const messages = this.#frames.push(chunk)
    if (messages.length === 0) return null
    let out = ''
    for (const message of messages) {
      const kind = message.headers[':message-type']
      if (kind === 'exception' || kind === 'error') {
        out += errorEventOf(message)
        continue
      }
      const type = message.headers[':event-type']
      if (typeof type !== 'string') continue
      out += this.#eventOf(type, JSON.parse(message.payload.toString('utf8')))
    }
    return out ? Buffer.from(out) : null
  }

  /**
   * The stream ended without `metadata`: the stop is still written (no
   * usage: the gateway estimates, as for any cut stream). One that ended
   * inside a frame was cut: the read fails.
   */
  end(): Buffer | null {
    this.#frames.end()
    if (this.#done || this.#stop === null) return null
    return Buffer.from(this.#finish(null))
  }

  #eventOf(type: string, event: any): string {
    switch (type) {
      case 'messageStart':
        return this.#start()
      case 'contentBlockStart': {
        const toolUse = event?.start?.toolUse
        if (!toolUse) return this.#start()
        if (this.jsonTool !== null && toolUse.name === this.jsonTool) {
          this.#jsonIndex = event.contentBlockIndex
          return this.#start() + this.#openBlock(event.contentBlockIndex, 'text', { type: 'text', text: '' })
        }
        this.#calledTool = true
        return (
          this.#start() +
          this.#openBlock(event.contentBlockIndex, 'tool_use', { type: 'tool_use', id: toolUse.toolUseId, name: toolUse.name, input: {} })
        )
      }
      case 'contentBlockDelta':
        return this.#start() + this.#delta(event?.contentBlockIndex, event?.delta ?? {})
      case 'contentBlockStop':
        return this.#closeBlock()
      case 'messageStop':
        this.#stop = anthropicStopOfConverse(event?.stopReason)
        if (this.#stop === 'tool_use' && this.#jsonIndex >= 0 && !this.#calledTool) this.#stop = 'end_turn'
        return this.#start() + this.#closeBlock()
      case 'metadata':
        return this.#done ? '' : this.#finish(event?.usage ?? null)
      default:
        return ''
    }
  }

  #start(): string {
    if (this.#started) return ''
    this.#started = true
    const message = {
      id: this.id,
      type: 'message',
      role: 'assistant',
      model: this.model,
      content: [],
      stop_reason: null,
      stop_sequence: null,
      // Known only at the end (metadata): said then, in message_delta. Zeros here were a report of zero tokens.
      usage: UNKNOWN_USAGE,
    }
    return sse('message_start', { type: 'message_start', message })
  }

  #delta(index: number, delta: any): string {
    if (typeof delta.text === 'string') {
      return this.#ensure(index, 'text', { type: 'text', text: '' }) + this.#blockDelta({ type: 'text_delta', text: delta.text })
    }
    if (delta.toolUse && this.#jsonIndex >= 0 && index === this.#jsonIndex) {
      // The answer tool's input, piece by piece, is the answer's text
      const input = delta.toolUse.input
      const text = typeof input === 'string' ? input : input == null ? '' : JSON.stringify(input)
      return this.#ensure(index, 'text', { type: 'text', text: '' }) + (text ? this.#blockDelta({ type: 'text_delta', text }) : '')
    }
    if (delta.toolUse) {
      this.#calledTool = true
      // A tool's start came in contentBlockStart; without it, a block with what is known.
      const open = this.#ensure(index, 'tool_use', { type: 'tool_use', id: '', name: '', input: {} })
      // Converse sends the input as text pieces; one sent as a JSON value is written as its text ("[object Object]" before)
      const input = delta.toolUse.input
      return open + this.#blockDelta({ type: 'input_json_delta', partial_json: typeof input === 'string' ? input : input == null ? '' : JSON.stringify(input) })
    }
    const reasoning = delta.reasoningContent
    if (reasoning) {
      if (typeof reasoning.redactedContent === 'string') {
        return this.#closeBlock() + this.#openBlock(index, 'redacted_thinking', { type: 'redacted_thinking', data: reasoning.redactedContent })
      }
      const open = this.#ensure(index, 'thinking', { type: 'thinking', thinking: '', signature: '' })
      if (typeof reasoning.text === 'string') return open + this.#blockDelta({ type: 'thinking_delta', thinking: reasoning.text })
      if (typeof reasoning.signature === 'string') return open + this.#blockDelta({ type: 'signature_delta', signature: reasoning.signature })
      return open
    }
    return ''
  }

  /** Opens a block for a Converse index unless it is the one open (text blocks have no contentBlockStart). */
  #ensure(index: number, type: string, block: Record<string, unknown>): string {
    if (this.#open >= 0 && this.#openConverse === index && this.#openType === type) return ''
    return this.#openBlock(index, type, block)
  }

  #openBlock(index: number, type: string, block: Record<string, unknown>): string {
    const close = this.#closeBlock()
    this.#open = this.#nextIndex++
    this.#openConverse = typeof index === 'number' ? index : -1
    this.#openType = type
    return close + sse('content_block_start', { type: 'content_block_start', index: this.#open, content_block: block })
  }

  #blockDelta(delta: Record<string, unknown>): string {
    return sse('content_block_delta', { type: 'content_block_delta', index: this.#open, delta })
  }

  #closeBlock(): string {
    if (this.#open < 0) return ''
    const index = this.#open
    this.#open = -1
    this.#openConverse = -1
    this.#openType = ''
    return sse('content_block_stop', { type: 'content_block_stop', index })
  }

  #finish(usage: unknown): string {
    this.#done = true
    const counts = anthropicUsageOfConverse(usage)
    const delta = {
      type: 'message_delta',
      delta: { stop_reason: this.#stop ?? 'end_turn', stop_sequence: null },
      ...(counts ? { usage: counts } : {}),
    }
    return this.#start() + this.#closeBlock() + sse('message_delta', delta) + sse('message_stop', { type: 'message_stop' })
  }
}

function sse(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`
}
