import { flags } from '@adonisjs/core/ace'
import { AdminCommand, list, num } from '#services/admin_command'
import { parsePairs, validateChannel } from '#validators/admin'
import { createChannel } from '#actions/create_channel'
import { AdminInputError } from '#actions/admin_input_error'
import Plan from '#models/plan'

/** Plan names -> ids; an unknown name is the operator's error, naming it. */
async function planIdsNamed(names: string[]): Promise<number[]> {
  if (names.length === 0) return []
  const plans = await Plan.query().whereIn('name', names).select('id', 'name')
  const unknown = names.filter((name) => !plans.some((p) => p.name === name))
  if (unknown.length > 0) throw new AdminInputError(`--plans: no plan named ${unknown.join(', ')}`, 'planIds')
  return plans.map((p) => p.id)
}

/**
 * --plans as names: absent is every plan; given, at least one name (`--plans " "`
 * or `--plans ,` opened the channel to every plan without a word).
 */
function plansGiven(flag: string | undefined): string[] {
  const names = list(flag)
  if (names === undefined) return []
  if (names.length === 0) {
    throw new AdminInputError('--plans: name at least one plan (leave the flag out for a channel open to every plan)', 'planIds')
  }
  return names
}

export default class ChannelCreate extends AdminCommand {
  static commandName = 'channel:create'
  static description = 'Add an upstream channel (provider account) that serves model globs'

  @flags.string({ description: 'Channel name', required: true })
  declare name: string

  @flags.string({ description: 'openai|openrouter|deepseek|zai|gemini|google|anthropic|azure|bedrock|vertex|custom (google = native Gemini API, gemini = its OpenAI endpoint, azure = Azure OpenAI: models are deployment names, bedrock = Claude on AWS Bedrock: base URL its region, key ACCESS_KEY_ID:SECRET[:SESSION_TOKEN] or a Bedrock API key, vertex = Gemini and Claude on Google Vertex AI: base URL its location, key a service account JSON or an express-mode API key)', required: true })
  declare provider: string

  @flags.string({ description: 'Upstream base URL, e.g. https://api.openai.com/v1', required: true })
  declare baseUrl: string

  @flags.string({ description: 'Upstream API key (stored encrypted)' })
  declare apiKey?: string

  @flags.string({ description: 'Served model globs, comma separated', required: true })
  declare models: string

  @flags.string({ description: 'Model mapping "public=upstream,..."' })
  declare mapping?: string

  @flags.string({ description: 'Priority (higher first, default 0)' })
  declare priority?: string

  @flags.string({ description: 'Weight within a priority (default 1)' })
  declare weight?: string

  @flags.string({ description: 'Connect timeout (ms)' })
  declare connectTimeoutMs?: string

  @flags.string({ description: 'Time to the response head (ms); past it the next channel is tried' })
  declare firstByteTimeoutMs?: string

  @flags.string({ description: 'Longest silence between stream chunks (ms)' })
  declare idleTimeoutMs?: string

  @flags.string({ description: 'Whole upstream request (ms)' })
  declare totalTimeoutMs?: string

  @flags.string({ description: 'Plans the channel is open to (channel groups), names comma separated; default every plan' })
  declare plans?: string

  async execute() {
    // The panel's rules (validators/admin.ts): every problem reported at once.
    const mapping = parsePairs('modelMapping', this.mapping, '=', /,/)
    const input = await validateChannel(
      {
        name: this.name,
        provider: this.provider,
        baseUrl: this.baseUrl,
        apiKey: this.apiKey,
        models: list(this.models) ?? [],
        modelMapping: mapping.record,
        priority: num(this.priority),
        weight: num(this.weight),
        connectTimeoutMs: num(this.connectTimeoutMs),
        firstByteTimeoutMs: num(this.firstByteTimeoutMs),
        idleTimeoutMs: num(this.idleTimeoutMs),
        totalTimeoutMs: num(this.totalTimeoutMs),
        planIds: await planIdsNamed(plansGiven(this.plans)),
      },
      mapping.problems
    )
    const channel = await createChannel(input)
    this.logger.success(
      `Created channel ${channel.name} (id ${channel.id}, ${channel.provider}) serving ${channel.models.join(', ')}`
    )
  }
}
