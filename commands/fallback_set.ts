import { args, flags } from '@adonisjs/core/ace'
import { AdminCommand, list } from '#services/admin_command'
import { setFallbacksValidator } from '#validators/admin'
import { removeModelFallbacks, setModelFallbacks } from '#actions/set_model_fallbacks'

export default class FallbackSet extends AdminCommand {
  static commandName = 'fallback:set'
  static description = 'Set the models to try, in order, when every channel of a model (or glob) fails; --remove clears them'

  @args.string({ description: 'Model or glob' })
  declare model: string

  @flags.string({ description: 'Fallback models, comma separated, in order' })
  declare to?: string

  @flags.boolean({ description: 'Remove the fallbacks of the model' })
  declare remove?: boolean

  async execute() {
    if (this.remove) {
      await removeModelFallbacks(this.model)
      this.logger.success(`Removed the fallbacks of ${this.model}`)
      return
    }
    const input = await setFallbacksValidator.validate({ model: this.model, fallbacks: list(this.to) ?? [] })
    const set = await setModelFallbacks(input)
    this.logger.success(`Fallbacks of ${set.model}: ${set.fallbacks.join(' -> ')}`)
  }
}
