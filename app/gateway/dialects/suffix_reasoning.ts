import type { DialectName, ReasoningConfig } from '#gateway/dialects/canonical'
import { reasoningRules, type EncodeHints } from '#gateway/dialects/dialect'
import { anthropicThinkingBudget, maxTokensAbove, unsignedToolLoop } from '#gateway/dialects/anthropic_messages/request'
import { geminiThinkingConfig } from '#gateway/dialects/gemini/request'
import { effortOfBudget } from '#gateway/dialects/openai_chat/request'

/**
 * A pass-through body (the client's dialect is the channel's) with the
 * reasoning a model-name suffix asks for (routing/model_suffix.ts) in the
 * vendor's own field: Anthropic `thinking` (max_tokens raised above the
 * budget, sampling it refuses alongside taken out), Gemini
 * `generationConfig.thinkingConfig`, OpenAI `reasoning_effort` (Responses:
 * `reasoning.effort`; OpenRouter: its `reasoning` object). A translated body
 * gets the same through the canonical request's `reasoning` instead.
 *
 * The suffix wins over the client's own fields, except bare `-thinking`
 * (thinking on at the default), which leaves thinking the client already
 * asked for as it is. A shallow copy: the client's body is not changed.
 */
export function withSuffixReasoning(
  dialect: DialectName,
  body: Record<string, any>,
  reasoning: ReasoningConfig,
  upstreamModel: string,
  hints: EncodeHints | undefined
): Record<string, any> {
  const copy = { ...body }
  const bare = reasoning.effort === undefined && reasoning.budgetTokens === undefined
  switch (dialect) {
    case 'anthropic_messages':
      anthropic(copy, reasoning, bare)
      break
    case 'gemini':
      gemini(copy, reasoning, bare)
      break
    case 'openai_chat':
      chat(copy, reasoning, bare, upstreamModel, hints)
      break
    case 'openai_responses':
      responses(copy, reasoning, bare, upstreamModel, hints)
      break
  }
  return copy
}

function anthropic(copy: Record<string, any>, reasoning: ReasoningConfig, bare: boolean) {
  const asked = copy.thinking?.type
  if (bare && (asked === 'enabled' || asked === 'adaptive')) return
  // Anthropic refuses thinking with a forced tool, and in a tool loop whose assistant turn came back
  // without its signed thinking (a client that does not keep it): the request's contract wins, as
  // when translating (encodeAnthropicRequest).
  const forced = copy.tool_choice?.type === 'any' || copy.tool_choice?.type === 'tool'
  const budget = forced || endsInUnsignedToolLoop(copy.messages) ? 0 : anthropicThinkingBudget(reasoning)
  if (budget === 0) {
    delete copy.thinking
    return
  }
  copy.thinking = { type: 'enabled', budget_tokens: budget }
  copy.max_tokens = maxTokensAbove(copy.max_tokens, budget)
  // With thinking Anthropic takes no temperature or top_k, and top_p only from 0.95.
  delete copy.temperature
  delete copy.top_k
  if (typeof copy.top_p === 'number' && copy.top_p < 0.95) delete copy.top_p
}

/** unsignedToolLoop over the client's messages, whose blocks may be anything (a malformed one: no) */
function endsInUnsignedToolLoop(messages: unknown): boolean {
  if (!Array.isArray(messages)) return false
  try {
    return unsignedToolLoop(messages)
  } catch {
    return false
  }
}

function gemini(copy: Record<string, any>, reasoning: ReasoningConfig, bare: boolean) {
  // Google reads the snake_case spelling too: the one the client used is the one changed.
  const key = copy.generationConfig === undefined && copy.generation_config !== undefined ? 'generation_config' : 'generationConfig'
  const config = { ...(copy[key] ?? {}) }
  const thinkingKey = config.thinkingConfig === undefined && config.thinking_config !== undefined ? 'thinking_config' : 'thinkingConfig'
  const own = config[thinkingKey]
  if (bare && own && ((own.thinkingBudget ?? own.thinking_budget ?? 0) !== 0 || own.thinkingLevel || own.thinking_level)) return
  config[thinkingKey] = geminiThinkingConfig(reasoning)
  copy[key] = config
}

function chat(copy: Record<string, any>, reasoning: ReasoningConfig, bare: boolean, upstreamModel: string, hints: EncodeHints | undefined) {
  if (bare) return
  // LiteLLM's `thinking` would be turned into an effort (or refused): the suffix's takes its place.
  delete copy.thinking
  const effort = effortOf(reasoning)
  if (hints?.openRouterFields === true) {
    const exclude = copy.reasoning?.exclude === true
    if (effort === null) delete copy.reasoning
    else copy.reasoning = reasoning.budgetTokens ? { max_tokens: reasoning.budgetTokens } : { effort }
    if (exclude && copy.reasoning) copy.reasoning.exclude = true
    delete copy.reasoning_effort
    return
  }
  delete copy.reasoning
  if (effort === null && hints?.thinkingOffEffort !== undefined) copy.reasoning_effort = hints.thinkingOffEffort
  else if (effort === null) delete copy.reasoning_effort
  // A model that takes no effort (GPT-4o answers 400 to one) gets none.
  else if (reasoningRules(upstreamModel, hints).effort) copy.reasoning_effort = effort
}

function responses(copy: Record<string, any>, reasoning: ReasoningConfig, bare: boolean, upstreamModel: string, hints: EncodeHints | undefined) {
  if (bare) return
  const effort = effortOf(reasoning)
  if (effort === null) delete copy.reasoning
  else if (reasoningRules(upstreamModel, hints).effort) copy.reasoning = { ...(copy.reasoning ?? {}), effort }
}

/** The effort a suffix asks of OpenAI (a budget as the effort it is closest to); null: thinking off */
function effortOf(reasoning: ReasoningConfig): string | null {
  if (reasoning.budgetTokens === 0) return null
  return reasoning.effort ?? effortOfBudget(reasoning.budgetTokens!)
}
