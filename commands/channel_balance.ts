import { args, flags } from '@adonisjs/core/ace'
import { AdminCommand } from '#services/admin_command'
import { AdminInputError } from '#actions/admin_input_error'
import { updateAllChannelBalances, updateChannelBalance, type BalanceCheck } from '#actions/channel_balance'

export default class ChannelBalance extends AdminCommand {
  static commandName = 'channel:balance'
  static description =
    "Ask a channel's upstream what its account has left (OpenRouter, DeepSeek, OpenAI-compatible resellers, new-api, one-api), or --all of them; the panel shows it"

  @args.string({ description: 'Channel id or name (not with --all)', required: false })
  declare channel?: string

  @flags.boolean({ description: 'Every channel whose provider publishes a balance, 4 at a time' })
  declare all?: boolean

  async execute() {
    if (this.all && this.channel) throw new AdminInputError('Give a channel or --all, not both')
    if (!this.all && !this.channel) throw new AdminInputError('Name a channel (id or name), or give --all')
    const { checks, skipped } = this.all ? await updateAllChannelBalances() : { checks: [await updateChannelBalance(this.channel!)], skipped: 0 }
    if (!checks.length) this.logger.info('No channel whose provider publishes a balance (OpenRouter, DeepSeek, OpenAI, custom)')
    for (const check of checks) this.#print(check)
    if (skipped) this.logger.error(`${skipped} channels not checked: the run's time was spent first`)
    if (skipped || checks.some((check) => !check.ok)) this.exitCode = 1
  }

  #print(check: BalanceCheck) {
    const label = `channel ${check.channelId} (${check.name})`
    if (check.ok) {
      this.logger.success(`${label}: ${check.amount} ${check.currency} (${check.latencyMs} ms)`)
      return
    }
    const kept = check.amount === null ? '' : `; last read ${check.amount} ${check.currency} at ${check.amountAt?.toISOString()}`
    this.logger.error(`${label}: ${check.error}${kept}`)
  }
}
