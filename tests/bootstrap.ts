import { createServer } from 'node:http'
import { assert } from '@japa/assert'
import { apiClient } from '@japa/api-client'
import app from '@adonisjs/core/services/app'
import type { Config } from '@japa/runner/types'
import { pluginAdonisJS } from '@japa/plugin-adonisjs'
import testUtils from '@adonisjs/core/services/test_utils'
import { browserClient } from '@japa/browser-client'

/**
 * Tests run against a real PostgreSQL (embedded, database gateway_test) and
 * the mock upstream on 127.0.0.1. Functional suites start the HTTP server.
 */
export const plugins: Config['plugins'] = [
  assert(),
  apiClient(),
  pluginAdonisJS(app),
  // Browser tests drive Debian's /usr/bin/chromium (playwright downloads no browser here);
  // playwright gives each launch a fresh temporary profile.
  browserClient({
    runInSuites: ['browser'],
    launcher: async () => {
      const { chromium } = await import('playwright')
      return chromium.launch({
        executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
        headless: true,
        args: [
          '--no-sandbox',
          '--disable-gpu',
          '--disable-background-networking',
          '--disable-component-update',
          '--disable-sync',
          '--no-first-run',
        ],
      })
    },
  }),
]

export const runnerHooks: Required<Pick<Config, 'setup' | 'teardown'>> = {
  setup: [],
  teardown: [],
}

export const configureSuite: Config['configureSuite'] = (suite) => {
  if (['browser', 'functional', 'e2e'].includes(suite.name)) {
    // The server as bin/server.ts creates it: the API lane in front of the router.
    return suite.setup(async () => {
      const { withApiLane } = await import('#gateway/http/api_lane')
      const { answerClientErrors } = await import('#gateway/http/client_errors')
      const { withCors } = await import('#gateway/http/cors')
      return testUtils.httpServer().start((adonis) => answerClientErrors(createServer(withCors(withApiLane(adonis)))))
    })
  }
}
