import { flags } from '@adonisjs/core/ace'
import { AdminCommand } from '#services/admin_command'
import { AdminInputError } from '#actions/admin_input_error'
import { revokeApiKey } from '#actions/revoke_api_key'

export default class KeyRevoke extends AdminCommand {
  static commandName = 'key:revoke'
  static description = 'Revoke an API key by id, display prefix or full key'

  @flags.string({ description: 'Key id, display prefix (sk-gw-AbCd) or the full key', required: true })
  declare key: string

  async execute() {
    if (!this.key?.trim()) throw new AdminInputError('--key is required')
    const key = await revokeApiKey(this.key.trim())
    this.logger.success(`Revoked key ${key.id} (${key.masked})`)
  }
}
