import { args } from '@adonisjs/core/ace'
import { AdminCommand } from '#services/admin_command'
import { findTeam, setKeyTeam } from '#actions/teams'

export default class KeyTeam extends AdminCommand {
  static commandName = 'key:team'
  static description = 'Put a key in a team (its budget, models, limits and block then apply too), or "none" to take it out'

  @args.string({ description: 'The key: its id, full value or display prefix' })
  declare key: string

  @args.string({ description: 'The team id, or none' })
  declare team: string

  async execute() {
    const team = this.team === 'none' ? null : await findTeam(this.team)
    const key = await setKeyTeam(this.key, team?.id ?? null)
    this.logger.success(team ? `Key ${key.masked} is in team ${team.alias}` : `Key ${key.masked} is in no team`)
  }
}
