import { test } from '@japa/runner'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Browser } from 'playwright'
import { launchChromium } from '#tests/browser_page'
import { baseUrl, resetDatabase, seedChannel, seedUser, startMock, usageRows } from '#tests/helpers'

/**
 * A web app on another origin calls the API from Chromium, as a browser-side
 * chat UI (or the OpenAI SDK with dangerouslyAllowBrowser) does: a POST with
 * an Authorization header, so the browser sends a preflight first and then
 * lets the script read the answer and its x-request-id only if the CORS
 * headers say so (app/gateway/http/cors.ts).
 */
test.group('CORS in a browser', (group) => {
  let browser: Browser
  let app: http.Server
  let appUrl = ''

  group.setup(async () => {
    await resetDatabase()
    const mock = await startMock()
    await seedChannel({ name: 'cors-browser', baseUrl: mock.url, models: ['*'] })
    // The web app: one page on its own origin (another port is another origin).
    app = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' })
      res.end('<!doctype html><title>web app</title><p>app</p>')
    })
    await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve))
    appUrl = `http://localhost:${(app.address() as AddressInfo).port}/`
    browser = await launchChromium()
    return async () => {
      await browser.close()
      app.close()
      await mock.stop()
    }
  })

  test("a page on another origin calls /v1/chat/completions with its key and reads the answer and its request id", async ({ assert }) => {
    const user = await seedUser()
    const page = await (await browser.newContext()).newPage()
    await page.goto(appUrl)
    const result = await page.evaluate(
      async ({ url, key }) => {
        const response = await fetch(`${url}/v1/chat/completions`, {
          method: 'POST',
          headers: { 'authorization': `Bearer ${key}`, 'content-type': 'application/json' },
          body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }),
        })
        const body = (await response.json()) as { choices: Array<{ message: { content: string } }> }
        return { status: response.status, requestId: response.headers.get('x-request-id'), text: body.choices[0].message.content }
      },
      { url: baseUrl(), key: user.key }
    )
    assert.equal(result.status, 200)
    assert.match(result.requestId ?? '', /^[0-9a-f-]{36}$/)
    assert.isString(result.text)
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 1, 'one request metered (the preflight is not one)')
    assert.equal(rows[0].request_id, result.requestId)
  })
})
