import { flags } from '@adonisjs/core/ace'
import { AdminCommand } from '#services/admin_command'
import { AdminInputError } from '#actions/admin_input_error'
import { regenerateApiKey } from '#actions/regenerate_api_key'

/** key:regenerate: the same key with a new value (LiteLLM's /key/regenerate), printed alone on the last line, once. */
export default class KeyRegenerate extends AdminCommand {
  static commandName = 'key:regenerate'
  static description = 'Give an API key a new value (the old one is refused at once); printed alone on the last line, once'

  @flags.string({ description: 'Key id, display prefix (sk-gw-AbCd) or the full key', required: true })
  declare key: string

  async execute() {
    if (!this.key?.trim()) throw new AdminInputError('--key is required')
    const { apiKey, key } = await regenerateApiKey(this.key.trim())
    this.logger.success(`Regenerated key "${apiKey.name}" (id ${apiKey.id}, ${apiKey.masked}); it is shown only once:`)
    // Alone on its own line, for scripts (as key:create prints it).
    console.log(key)
  }
}
