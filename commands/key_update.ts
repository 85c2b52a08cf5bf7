import { modelLimitsFromText } from '#gateway/limits/model_limits'
import { flags } from '@adonisjs/core/ace'
import { AdminCommand, list, num } from '#services/admin_command'
import { updateKeyValidator } from '#validators/admin'
import { findApiKey } from '#actions/revoke_api_key'
import { keySnapshot, lastDayOf, updateApiKey } from '#actions/update_api_key'
import { describeChanges } from '#actions/audit'

/** "none" clears a limit; a flag left out keeps the key's value. */
const NONE = 'none'

export default class KeyUpdate extends AdminCommand {
  static commandName = 'key:update'
  static description = 'Change a key: name, models, last day, RPM/TPM, spend cap and its period, soft budget, allowed IPs ("none" clears a value; left-out flags keep theirs)'

  @flags.string({ description: 'Key id, full key or display prefix', required: true })
  declare key: string

  @flags.string({ description: 'Key name' })
  declare name?: string

  @flags.string({ description: 'Model globs, comma separated, or "none" for what the plan allows' })
  declare models?: string

  @flags.string({ description: 'Last UTC day the key works (YYYY-MM-DD), or "none" for never' })
  declare expiresOn?: string

  @flags.string({ description: 'Requests per minute, or "none" for the plan\'s' })
  declare rpm?: string

  @flags.string({ description: 'Tokens per minute, or "none" for the plan\'s' })
  declare tpm?: string

  @flags.string({ description: 'Requests in flight at once (per gateway instance), or "none" for no cap' })
  declare maxParallel?: string

  @flags.string({ description: 'Spend cap in USD, or "none"' })
  declare spendLimit?: string

  @flags.string({ description: 'The cap resets every day, week or month (UTC), or "none"' })
  declare spendPeriod?: string

  @flags.string({ description: 'Soft budget in USD (alerts once crossed, never refuses), or "none"' })
  declare softBudget?: string

  @flags.string({ description: 'Client addresses allowed to use the key: IPs and CIDR ranges, comma separated, or "none" for any address' })
  declare ips?: string

  @flags.string({ description: 'Limits per model asked for, "; " between models: "gpt-4o rpm=10 tpm=20000 budget=5/day; claude-x rpm=5 budget=20", or "none"' })
  declare modelLimits?: string

  protected flagNames = { allowedIps: 'ips' }

  async execute() {
    const key = await findApiKey(this.key)
    const current = keySnapshot(key)
    const pick = <T>(flag: string | undefined, kept: T, parse: (v: string) => T): T | null =>
      flag === undefined ? kept : flag === NONE ? null : parse(flag)
    const spendLimit = pick(this.spendLimit, current.spendLimit, (v) => v)
    const input = await updateKeyValidator.validate({
      name: this.name ?? key.name,
      models: pick(this.models, key.allowedModels ?? undefined, (v) => list(v)) ?? undefined,
      expiresOn: pick(this.expiresOn, lastDayOf(key.expiresAt), (v) => v),
      rpm: pick(this.rpm, key.rpm, (v) => num(v) ?? null),
      tpm: pick(this.tpm, key.tpm, (v) => num(v) ?? null),
      maxParallel: pick(this.maxParallel, key.maxParallel, (v) => num(v) ?? null),
      spendLimit,
      // Clearing the cap clears its period unless one is asked for (then refused: nothing to reset).
      spendPeriod: pick(this.spendPeriod, spendLimit === null ? null : key.spendPeriod, (v) => v as any),
      // Left out: unchanged (undefined); "none": no soft budget.
      softBudget: this.softBudget === undefined ? undefined : this.softBudget === NONE ? null : this.softBudget,
      // Left out: the list stays (undefined); "none": any address.
      allowedIps: this.ips === undefined ? undefined : this.ips === NONE ? null : list(this.ips),
    })
    // Left out: the limits stay; "none": no limits per model.
    const modelLimits =
      this.modelLimits === undefined ? undefined : this.modelLimits === NONE ? null : modelLimitsFromText(this.modelLimits.replaceAll(';', '\n'))
    const saved = await updateApiKey(key.id, { ...input, modelLimits })
    const changes = describeChanges(current, keySnapshot(saved))
    this.logger.success(`Key ${saved.masked} (id ${saved.id}): ${changes || 'nothing changed'}`)
  }
}
