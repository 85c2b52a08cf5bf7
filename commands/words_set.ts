import { readFile } from 'node:fs/promises'
import { flags } from '@adonisjs/core/ace'
import { AdminCommand } from '#services/admin_command'
import { AdminInputError } from '#actions/admin_input_error'
import { setWordFilter, type WordFilterInput } from '#actions/set_word_filter'
import { cliActor } from '#actions/audit'

export default class WordsSet extends AdminCommand {
  static commandName = 'words:set'
  static description = 'Set the sensitive-word filter: prompts (and optionally answers) with a listed word are refused'

  @flags.boolean({ description: 'Turn the filter on' })
  declare on?: boolean

  @flags.boolean({ description: 'Turn the filter off (the list is kept)' })
  declare off?: boolean

  @flags.array({ description: 'An entry (repeatable): a word or phrase, or re:PATTERN; replaces the list' })
  declare word?: string[]

  @flags.string({ description: 'A file with the list, one entry per line; replaces the list' })
  declare file?: string

  @flags.string({ description: 'What is checked: prompt (default) or prompt_and_completion (also answers, streamed ones as they stream)' })
  declare check?: string

  @flags.boolean({ description: 'Refusals do not name the matched words' })
  declare hideMatches?: boolean

  @flags.boolean({ description: 'Refusals name the matched words (the default)' })
  declare showMatches?: boolean

  async execute() {
    if (this.on && this.off) throw new AdminInputError('--on or --off, not both')
    if (this.word && this.file) throw new AdminInputError('--word or --file, not both')
    if (this.check !== undefined && !['prompt', 'prompt_and_completion'].includes(this.check)) {
      throw new AdminInputError('--check: prompt or prompt_and_completion')
    }
    const input: WordFilterInput = {}
    if (this.on || this.off) input.enabled = this.on === true
    if (this.word) input.words = this.word
    if (this.file) input.words = await readFile(this.file, 'utf8')
    if (this.check !== undefined) input.checkCompletions = this.check === 'prompt_and_completion'
    if (this.hideMatches || this.showMatches) input.hideMatches = this.hideMatches === true
    const saved = await setWordFilter(input, cliActor())
    this.logger.success(
      `Sensitive-word filter ${saved.enabled ? 'on' : 'off'}: ${saved.words.length} entries, checking ${saved.checkCompletions ? 'prompts and answers' : 'prompts'}${saved.hideMatches ? ', matches hidden' : ''}`
    )
  }
}
