import { flags } from '@adonisjs/core/ace'
import { AdminCommand } from '#services/admin_command'
import { setPriceValidator } from '#validators/admin'
import { setPrice } from '#actions/set_price'

export default class PriceSet extends AdminCommand {
  static commandName = 'price:set'
  static description = 'Set USD per 1M input/output tokens for a model glob'

  @flags.string({ description: 'Model or glob, e.g. gpt-4o or "gpt-4o*"', required: true })
  declare model: string

  @flags.string({ description: 'USD per 1M input tokens', required: true })
  declare input: string

  @flags.string({ description: 'USD per 1M output tokens', required: true })
  declare output: string

  @flags.string({ description: 'USD per generated image (image models), e.g. 0.04' })
  declare perImage?: string

  @flags.string({ description: 'USD per second of input audio (transcriptions, translations), e.g. 0.0001' })
  declare perSecond?: string

  @flags.string({ description: 'USD per input character (speech), e.g. 0.000015' })
  declare perCharacter?: string


  @flags.string({ description: 'USD per request that succeeded, on top of the token prices (per-call pricing), e.g. 0.002' })
  declare perRequest?: string

  @flags.string({ description: "USD per server-side web search (Anthropic's web_search tool: 0.01; OpenAI's web_search_call)" })
  declare perWebSearch?: string

  @flags.string({ description: 'USD per second of generated video (sora-2: 0.1, veo-3.0-generate-001: 0.4)' })
  declare perVideoSecond?: string

  @flags.string({ description: 'USD per 1M prompt tokens read from the provider cache (default: the input price)' })
  declare cacheRead?: string

  @flags.string({ description: 'USD per 1M prompt tokens written to the provider cache (default: the input price)' })
  declare cacheWrite?: string

  @flags.string({ flagName: 'cache-write-1h', description: "USD per 1M prompt tokens written to Anthropic's one-hour cache (default: the cache-write price), e.g. 6 for claude-sonnet-4-5" })
  declare cacheWrite1h?: string

  @flags.string({ description: 'USD per 1M audio input tokens (realtime models; default: the input price), e.g. 32' })
  declare audioInput?: string

  @flags.string({ description: 'USD per 1M audio output tokens (realtime models; default: the output price), e.g. 64' })
  declare audioOutput?: string

  @flags.string({ description: 'USD per 1M image output tokens (Gemini image models: gemini-2.5-flash-image 30; default: the output price)' })
  declare imageOutput?: string

  async execute() {
    const input = await setPriceValidator.validate({
      model: this.model,
      input: this.input,
      output: this.output,
      perImage: this.perImage,
      perSecond: this.perSecond,
      perCharacter: this.perCharacter,
      perRequest: this.perRequest,
      perWebSearch: this.perWebSearch,
      perVideoSecond: this.perVideoSecond,
      cacheRead: this.cacheRead,
      cacheWrite: this.cacheWrite,
      cacheWrite1h: this.cacheWrite1h,
      audioInput: this.audioInput,
      audioOutput: this.audioOutput,
      imageOutput: this.imageOutput,
    })
    const price = await setPrice(input)
    this.logger.success(
      `Price for ${price.modelPattern}: $${input.input}/1M input, $${input.output}/1M output` +
        (input.perImage ? `, $${input.perImage}/image` : '') +
        (input.perSecond ? `, $${input.perSecond}/second of audio` : '') +
        (input.perCharacter ? `, $${input.perCharacter}/character` : '') +
        (input.perRequest ? `, $${input.perRequest}/request` : '') +
        (input.perWebSearch ? `, $${input.perWebSearch}/web search` : '') +
        (input.perVideoSecond ? `, $${input.perVideoSecond}/second of video` : '') +
        (input.cacheRead ? `, $${input.cacheRead}/1M cache read` : '') +
        (input.cacheWrite ? `, $${input.cacheWrite}/1M cache write` : '') +
        (input.cacheWrite1h ? `, $${input.cacheWrite1h}/1M one-hour cache write` : '') +
        (input.audioInput ? `, $${input.audioInput}/1M audio input` : '') +
        (input.audioOutput ? `, $${input.audioOutput}/1M audio output` : '') +
        (input.imageOutput ? `, $${input.imageOutput}/1M image output` : '')
    )
  }
}
