import { modelLimitsFromText } from '#gateway/limits/model_limits'
import { flags } from '@adonisjs/core/ace'
import { AdminCommand, list, num } from '#services/admin_command'
import { createKeyValidator } from '#validators/admin'
import { createApiKey } from '#actions/issue_api_key'

export default class KeyCreate extends AdminCommand {
  static commandName = 'key:create'
  static description = 'Issue an API key for a user; the key is printed alone on the last line, once'

  @flags.string({ description: 'User email or id', required: true })
  declare user: string

  @flags.string({ description: 'Key name' })
  declare name?: string

  @flags.string({ description: 'Restrict the key to these model globs (comma separated)' })
  declare models?: string

  @flags.string({ description: 'Expire after N days' })
  declare expiresInDays?: string

  @flags.string({ description: 'Requests per minute for this key' })
  declare rpm?: string

  @flags.string({ description: 'Tokens per minute for this key' })
  declare tpm?: string

  @flags.string({ description: 'Requests in flight at once through this key (per gateway instance)' })
  declare maxParallel?: string

  @flags.string({ description: 'Spend cap in USD for this key' })
  declare spendLimit?: string

  @flags.string({ description: 'The spend cap resets every day, week or month (UTC); default: never' })
  declare spendPeriod?: string

  @flags.string({ description: 'Soft budget in USD: crossing it alerts the operator once (key.soft_budget_crossed), never refuses' })
  declare softBudget?: string

  @flags.boolean({ description: 'The key may call the management API (/api/admin); the owner must be an admin' })
  declare manage?: boolean

  @flags.string({ description: 'Only these client addresses may use the key: IPs and CIDR ranges, comma separated (e.g. "203.0.113.7,10.0.0.0/8")' })
  declare ips?: string

  @flags.string({ description: 'Limits per model asked for, "; " between models: "gpt-4o rpm=10 tpm=20000 budget=5/day; claude-x rpm=5 budget=20"' })
  declare modelLimits?: string

  protected flagNames = { allowedIps: 'ips' }

  async execute() {
    const input = await createKeyValidator.validate({
      user: this.user,
      name: this.name,
      models: list(this.models),
      expiresInDays: num(this.expiresInDays),
      rpm: num(this.rpm),
      tpm: num(this.tpm),
      maxParallel: num(this.maxParallel),
      spendLimit: this.spendLimit,
      spendPeriod: this.spendPeriod,
      softBudget: this.softBudget,
      manage: this.manage,
      allowedIps: list(this.ips),
    })
    const modelLimits = modelLimitsFromText(this.modelLimits?.replaceAll(';', '\n'))
    const { apiKey, key } = await createApiKey({ ...input, modelLimits, userRef: input.user })
    this.logger.success(`Created key "${apiKey.name}" (id ${apiKey.id}, ${apiKey.masked}); it is shown only once:`)
    // Alone on the last line so scripts can capture it with `tail -n1`.
    console.log(key)
  }
}
