import { args, flags } from '@adonisjs/core/ace'
import { AdminCommand } from '#services/admin_command'
import { fetchChannelModels, setChannelModels } from '#actions/channel_models'

/**
 * The upstream's model list for a channel (new-api's "fetch model list"):
 * one id a line, marked when the channel serves it already; --add puts the
 * ones it does not serve into its models (audited like any edit).
 */
export default class ChannelModels extends AdminCommand {
  static commandName = 'channel:models'
  static description =
    "List the models a channel's upstream offers (asked with its key), marking those it serves; --add adds the others to the channel"

  @args.string({ description: 'Channel id or name' })
  declare channel: string

  @flags.boolean({ description: 'Add the models the channel does not serve yet to its models' })
  declare add?: boolean

  async execute() {
    const report = await fetchChannelModels(this.channel)
    for (const model of report.models) {
      const mark = model.served ? '  served' : ''
      const mapped = model.mappedFrom.length ? ` (as ${model.mappedFrom.join(', ')})` : ''
      this.logger.log(`${model.id}${mark}${mapped}`)
    }
    const missing = report.models.filter((model) => !model.served).map((model) => model.id)
    const note = report.truncated ? ' (list cut: more than the gateway reads)' : ''
    this.logger.info(`${report.models.length} models upstream, ${missing.length} not served by channel ${report.channelId}${note}`)
    if (!this.add) return
    if (!missing.length) {
      this.logger.info('Nothing to add')
      return
    }
    const { added } = await setChannelModels(report.channelId!, missing, 'add')
    this.logger.success(`Added ${added.length} models to channel ${report.channelId}`)
  }
}
