import type { HttpContext } from '@adonisjs/core/http'
import { apiCallOf } from '#gateway/http/generation_request'
import { audioSpeech, audioTranscriptions, audioTranslations } from '#gateway/http/api_endpoints'

export default class AudioController {
  /** POST /v1/audio/transcriptions: a multipart upload, billed per second of audio. */
  async transcriptions(ctx: HttpContext) {
    await audioTranscriptions(apiCallOf(ctx))
  }

  /** POST /v1/audio/translations: a multipart upload, billed per second of audio. */
  async translations(ctx: HttpContext) {
    await audioTranslations(apiCallOf(ctx))
  }

  /** POST /v1/audio/speech: audio streamed back, billed per input character. */
  async speech(ctx: HttpContext) {
    await audioSpeech(apiCallOf(ctx))
  }
}
