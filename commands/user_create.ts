import { flags } from '@adonisjs/core/ace'
import { AdminCommand } from '#services/admin_command'
import { createUserValidator } from '#validators/admin'
import { createUser } from '#actions/create_user'

export default class UserCreate extends AdminCommand {
  static commandName = 'user:create'
  static description = 'Create a user (or admin); prints a generated password when none is given'

  @flags.string({ description: 'Email address (login)', required: true })
  declare email: string

  @flags.string({ description: 'Password (min 8 chars); generated when omitted' })
  declare password?: string

  @flags.string({ description: 'admin or user (default user)' })
  declare role?: string

  @flags.string({ description: 'Plan name (default: the "default" plan)' })
  declare plan?: string

  async execute() {
    const input = await createUserValidator.validate({
      email: this.email,
      password: this.password,
      role: this.role,
      plan: this.plan,
    })
    const { user, password } = await createUser(input)
    this.logger.success(`Created ${user.role} ${user.email} (id ${user.id})`)
    if (password) this.logger.log(`password: ${password}`)
  }
}
