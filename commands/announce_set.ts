import { flags } from '@adonisjs/core/ace'
import { AdminCommand } from '#services/admin_command'
import { setAnnouncement } from '#actions/set_announcement'
import { cliActor } from '#actions/audit'

export default class AnnounceSet extends AdminCommand {
  static commandName = 'announce:set'
  static description = 'Put up the announcement shown at the top of every portal and public page (--clear takes it down)'

  @flags.string({ description: 'The text (500 characters at most)' })
  declare text?: string

  @flags.string({ description: 'info (default) or warning' })
  declare level?: string

  @flags.string({ description: 'An http(s) link shown after the text' })
  declare link?: string

  @flags.boolean({ description: 'Take the announcement down' })
  declare clear?: boolean

  async execute() {
    const value = await setAnnouncement({ text: this.clear ? '' : (this.text ?? ''), level: this.level, link: this.link ?? null }, cliActor())
    this.logger.success(value ? `Announcement up (${value.level}): ${value.text}` : 'Announcement down')
  }
}
