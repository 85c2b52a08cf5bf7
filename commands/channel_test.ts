import { args } from '@adonisjs/core/ace'
import { AdminCommand } from '#services/admin_command'
import { checkChannelKey } from '#actions/test_channel'

export default class ChannelTest extends AdminCommand {
  static commandName = 'channel:test'
  static description =
    "Test a channel's upstream key (lists its models); re-enables a channel the gateway disabled itself when it passes"

  @args.string({ description: 'Channel id or name' })
  declare channel: string

  async execute() {
    const result = await checkChannelKey(this.channel)
    const line = `channel ${result.channelId}: ${result.message} (${result.latencyMs} ms)`
    if (!result.ok) {
      this.logger.error(line)
      this.exitCode = 1
      return
    }
    this.logger.success(line)
    if (result.reEnabled) this.logger.info(`channel ${result.channelId} is back in rotation`)
  }
}
