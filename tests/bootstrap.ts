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
  // playwright gives each launch a fresh temporary profile. The same launch as tests/browser_page.ts:
  // a Content-Security-Policy violation on any page a test visits fails the run when the browser closes.
  browserClient({
    runInSuites: ['browser'],
    launcher: async () => {
      const { launchChromium } = await import('#tests/browser_page')
      return launchChromium()
    },
  }),
]

export const runnerHooks: Required<Pick<Config, 'setup' | 'teardown'>> = {
  setup: [],
  teardown: [],
}

/** A browser test fails when a page it visited broke the Content-Security-Policy (tests/browser_page.ts). */
function failOnCspViolations(test: { cleanup(handler: () => void | Promise<void>): unknown }) {
  test.cleanup(async () => {
    const { takeAllCspViolations } = await import('#tests/browser_page')
    const found = takeAllCspViolations()
    if (found.length) throw new Error(`Content-Security-Policy violations:\n${found.join('\n')}`)
  })
}

export const configureSuite: Config['configureSuite'] = (suite) => {
  if (suite.name === 'browser') {
    suite.onTest(failOnCspViolations)
    suite.onGroup((group) => group.tap(failOnCspViolations))
  }
  if (['browser', 'functional', 'e2e'].includes(suite.name)) {
    // The server as bin/server.ts creates it: the API lane in front of the router.
    return suite.setup(async () => {
      const { withApiLane } = await import('#gateway/http/api_lane')
      const { answerClientErrors } = await import('#gateway/http/client_errors')
      const { withCors } = await import('#gateway/http/cors')
      const { deferExpectContinue } = await import('#gateway/http/expect_continue')
      const { closeSilentSockets } = await import('#gateway/http/silent_sockets')
      const { withRealtime } = await import('#gateway/realtime/realtime_upgrade')
      return testUtils
        .httpServer()
        .start((adonis) => withRealtime(answerClientErrors(closeSilentSockets(deferExpectContinue(createServer(withCors(withApiLane(adonis))))))))
    })
  }
}
