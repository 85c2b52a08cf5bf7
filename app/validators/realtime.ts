import vine from '@vinejs/vine'

/** The session configuration a secret or call is made with: an object whose fields go up as given (the model read apart) */
const session = () => vine.object({ model: vine.string().minLength(1).maxLength(200).optional() }).allowUnknownProperties()

/**
 * `POST /v1/realtime/client_secrets` {expires_after?: {anchor?: 'created_at', seconds?: 10-7200}, session?}:
 * OpenAI's bounds (10 s to 2 h, 600 s when not given).
 */
export const clientSecretValidator = vine.compile(
  vine
    .object({
      expires_after: vine
        .object({
          anchor: vine.enum(['created_at']).optional(),
          seconds: vine.number({ strict: true }).withoutDecimals().range([10, 7200]).optional(),
        })
        .optional()
        .nullable(),
      session: session().optional(),
    })
    .allowUnknownProperties()
)

/** The beta `POST /v1/realtime/sessions`: the session's fields at the top */
export const betaSessionValidator = vine.compile(session())

/**
 * The beta `POST /v1/realtime/transcription_sessions`: the session's fields at
 * the top (its model in `input_audio_transcription.model`, read apart), and
 * the secret's lifetime in `client_secret.expires_at` (10 s to 2 h, 600 s when not given).
 */
export const transcriptionSessionValidator = vine.compile(
  vine
    .object({
      input_audio_transcription: vine
        .object({ model: vine.string().minLength(1).maxLength(200).optional() })
        .allowUnknownProperties()
        .optional()
        .nullable(),
      client_secret: vine
        .object({
          expires_at: vine
            .object({
              anchor: vine.enum(['created_at']).optional(),
              seconds: vine.number({ strict: true }).withoutDecimals().range([10, 7200]).optional(),
            })
            .optional()
            .nullable(),
        })
        .optional()
        .nullable(),
    })
    .allowUnknownProperties()
)
