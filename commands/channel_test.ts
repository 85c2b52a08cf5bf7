import { args, flags } from '@adonisjs/core/ace'
import { AdminCommand } from '#services/admin_command'
import { AdminInputError } from '#actions/admin_input_error'
import { checkChannelKey } from '#actions/test_channel'
import { testAllChannels } from '#actions/test_all_channels'

export default class ChannelTest extends AdminCommand {
  static commandName = 'channel:test'
  static description =
    "Test a channel's upstream key (lists its models), or --all of them; re-enables a channel the gateway disabled itself when it passes"

  @args.string({ description: 'Channel id or name (not with --all)', required: false })
  declare channel?: string

  @flags.boolean({ description: 'Test every channel in rotation and every one the gateway disabled itself, 4 at a time' })
  declare all?: boolean

  async execute() {
    if (this.all) return this.testAll()
    if (!this.channel) throw new AdminInputError('Name a channel (id or name), or give --all')
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

  /** One line per channel; exit 1 when any failed. */
  async testAll() {
    if (this.channel) throw new AdminInputError('Give a channel or --all, not both')
    const rows = await testAllChannels({ kind: 'key' })
    if (!rows.length) {
      this.logger.info('No channel to test (none enabled, none disabled by the gateway)')
      return
    }
    for (const row of rows) {
      const line = `channel ${row.channelId} (${row.name}): ${row.message}${row.skipped ? '' : ` (${row.latencyMs} ms)`}`
      if (row.ok) this.logger.success(line)
      else this.logger.error(line)
      if (row.reEnabled) this.logger.info(`channel ${row.channelId} is back in rotation`)
    }
    const failed = rows.filter((row) => !row.ok).length
    this.logger.info(`${rows.length - failed} of ${rows.length} channels passed`)
    if (failed) this.exitCode = 1
  }
}
