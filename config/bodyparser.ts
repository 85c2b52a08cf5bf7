import { defineConfig } from '@adonisjs/core/bodyparser'

/**
 * Used by the admin panel and portal only. The /v1 API reads the raw request
 * body itself: fields it does not own must reach the upstream untouched
 * (no trimming, no empty-string-to-null conversion).
 */
const bodyParserConfig = defineConfig({
  allowedMethods: ['POST', 'PUT', 'PATCH', 'DELETE'],
  form: {
    convertEmptyStringsToNull: true,
    trimWhitespaces: true,
    types: ['application/x-www-form-urlencoded'],
  },
  json: {
    convertEmptyStringsToNull: false,
    trimWhitespaces: false,
    types: ['application/json'],
  },
  /**
   * Off: no page or management route takes a file (the audio endpoints read
   * their own multipart bodies, outside this parser). Parsed, any POST (an
   * anonymous /login, before the CSRF check) would write up to 20 MB of
   * upload to the temp directory that nothing ever deletes.
   */
  multipart: {
    autoProcess: false,
    convertEmptyStringsToNull: true,
    trimWhitespaces: true,
    processManually: [],
    limit: '1mb',
    types: [],
  },
})

export default bodyParserConfig
