import app from '@adonisjs/core/services/app'
import { defineConfig, formatters, loaders } from '@adonisjs/i18n'

/**
 * Languages of the portal, /docs, /status, login and registration
 * (resources/lang/<locale>/*.json). A missing key in one language fails
 * tests/unit/translations.spec.ts. Chinese is `zh` (Simplified): an
 * Accept-Language of zh-CN, zh-Hans, zh-SG or plain zh matches it.
 */
const i18nConfig = defineConfig({
  defaultLocale: 'en',
  supportedLocales: ['en', 'vi', 'zh'],
  formatter: formatters.icu(),
  loaders: [loaders.fs({ location: app.languageFilesPath() })],
})

export default i18nConfig
