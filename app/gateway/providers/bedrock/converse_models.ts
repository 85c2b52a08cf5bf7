/**
 * Which family a Converse model is, for the fields Converse leaves to each
 * model (`additionalModelRequestFields`: a model refuses a key it does not
 * know, "extraneous key [thinking] is not permitted"), so the Anthropic
 * body's thinking, effort, top_k and betas go only where Bedrock documents
 * them:
 *
 * - `anthropic`: Claude (`thinking`, `top_k`, `anthropic_beta`,
 *   `output_config.effort`, as in its Messages body);
 * - `nova2`: Amazon Nova 2 (`reasoningConfig {type, maxReasoningEffort}`,
 *   `inferenceConfig.topK`); `nova`: the first Novas (`inferenceConfig.topK`);
 * - `gpt_oss`: OpenAI's open-weight models (`reasoning_effort`, a Chat
 *   Completions field, which Bedrock takes there for them);
 * - `other`: none of these (Llama, Mistral, DeepSeek, Qwen, ...).
 *
 * The model id says it by its vendor's part (`anthropic.`, `amazon.nova-2`,
 * `openai.gpt-oss`, after a geo prefix or an ARN's `/` alike: plain string
 * tests, no regex, per request). An application inference profile's ARN says nothing
 * (`.../application-inference-profile/a1b2c3`): the public model name the
 * client asked for is read instead (`claude-...`, `nova-2...`, `gpt-oss...`),
 * so that Claude behind such a profile still thinks.
 */
export type ConverseFamily = 'anthropic' | 'nova2' | 'nova' | 'gpt_oss' | 'other'

export function converseFamily(model: string, clientModel?: string): ConverseFamily {
  const id = model.slice(model.lastIndexOf('/') + 1)
  if (id.includes('anthropic.')) return 'anthropic'
  if (id.includes('amazon.nova-2')) return 'nova2'
  if (id.includes('amazon.nova')) return 'nova'
  if (id.includes('openai.gpt-oss')) return 'gpt_oss'
  // A model id has its vendor's dot (`meta.llama...`); an application inference profile's id has none.
  if (id.includes('.') || !clientModel) return 'other'
  return familyOfName(clientModel.toLowerCase())
}

/** A public model name (an alias the channel maps to an opaque profile): what it plainly names. */
function familyOfName(name: string): ConverseFamily {
  if (name.includes('claude')) return 'anthropic'
  if (/nova-?2/.test(name)) return 'nova2'
  if (name.includes('nova')) return 'nova'
  if (name.includes('gpt-oss')) return 'gpt_oss'
  return 'other'
}
