import { flags } from '@adonisjs/core/ace'
import { AdminCommand } from '#services/admin_command'
import { AdminInputError } from '#actions/admin_input_error'
import { setApiKeyBlocked } from '#actions/block_api_key'

/** key:block: a key refused until unblocked (LiteLLM's /key/block, /key/unblock); its settings and spend stay. */
export default class KeyBlock extends AdminCommand {
  static commandName = 'key:block'
  static description = 'Block an API key (refused until unblocked), or lift the block with --unblock'

  @flags.string({ description: 'Key id, display prefix (sk-gw-AbCd) or the full key', required: true })
  declare key: string

  @flags.boolean({ description: 'Lift the block: the key works again' })
  declare unblock?: boolean

  async execute() {
    if (!this.key?.trim()) throw new AdminInputError('--key is required')
    const key = await setApiKeyBlocked(this.key.trim(), !this.unblock)
    this.logger.success(`${this.unblock ? 'Unblocked' : 'Blocked'} key ${key.id} (${key.masked})`)
  }
}
