import { test } from '@japa/runner'
import type { Browser, Page } from 'playwright'
import { LAPTOP, PHONE, launchChromium, login, shoot } from '#tests/browser_page'
import { createUser } from '#actions/create_user'
import { createApiKey } from '#actions/issue_api_key'
import { postLedgerEntry } from '#actions/post_ledger_entry'
import { clearFormThrottles } from '#services/form_throttle'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { THINKING_TEXT } from '#tests/fixtures/mock_upstream/scenario'
import { baseUrl, post, refreshCaches, resetDatabase, seedChannel, seedPrice, startMock, usageRows } from '#tests/helpers'

/**
 * The portal's Playground in Chromium: a user makes a key on the Keys page,
 * pastes it in the Playground, and chats with a model of the mock upstream:
 * the answer streams in (shown while the stream is still open), as text
 * (markup in it stays text), with the usage line and the request id that
 * opens the usage log entry; a second turn carries the first; Stop ends a
 * stream; a stream cut by the upstream keeps its words and says why;
 * without streaming; a wrong key shows the API's 401 message, a
 * key's rate limit the 429 with its Retry-After; a thinking model's
 * reasoning folded apart from its answer; a failing provider's 5xx. Screenshots at laptop and
 * phone widths in tmp/screenshots/playground.
 */
const SHOTS = 'tmp/screenshots/playground'
const shot = (page: Page, name: string) => shoot(page, SHOTS, name)

/*
 * Waits below pass Playwright a function (run in the page; `globalThis` is
 * the window there), never a string: a string predicate is eval'd in the
 * page, which the CSP refuses.
 */

/** Until `selector` matches `count` elements. */
function untilCount(page: Page, selector: string, count: number) {
  return page.waitForFunction(({ selector: s, count: n }) => (globalThis as any).document.querySelectorAll(s).length === n, { selector, count })
}

/** Until the nth answer has some text while the Stop button is still shown (the stream is open). */
function untilStreaming(page: Page, nth: number) {
  return page.waitForFunction((n) => {
    const doc = (globalThis as any).document
    return doc.querySelectorAll('.turn--assistant .turn__text')[n]?.textContent.length > 0 && !doc.getElementById('pg-stop').hidden
  }, nth)
}

/** Until the Send button can be used again (the call is over). */
function untilIdle(page: Page) {
  return page.waitForFunction(() => !(globalThis as any).document.getElementById('pg-send').disabled)
}

/** Markup a model might answer with: it must show as these characters, never become elements. */
const ANSWER = 'Hello <img src=x data-injected> from <b data-injected>the</b> mock'

test.group('Playground in a browser', (group) => {
  let browser: Browser
  let mock: MockUpstream
  let thinker: MockUpstream
  let broken: MockUpstream
  let userId: number

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock({ text: ANSWER, chunkDelayMs: 60 })
    await seedChannel({ name: 'mock', baseUrl: mock.url, models: ['mock-chat', 'mock-mini'] })
    thinker = await startMock({ text: 'Four.', thinking: true })
    await seedChannel({ name: 'thinker', baseUrl: thinker.url, models: ['mock-thinker'] })
    broken = await startMock({ status: 503 })
    await seedChannel({ name: 'broken', baseUrl: broken.url, models: ['mock-broken'] })
    await seedPrice('mock-chat', '2', '8')
    const { user } = await createUser({ email: 'play-user@test.local', password: 'user-password', role: 'user' })
    userId = user.id
    await postLedgerEntry({ userRef: user.email, kind: 'topup', amount: '5' })
    await clearFormThrottles('127.0.0.1', [user.id])
    await refreshCaches()
    browser = await launchChromium()
    return async () => {
      await browser.close()
      await mock.stop()
      await thinker.stop()
      await broken.stop()
    }
  })

  test('paste a key, stream an answer with its usage, a second turn, Stop, no stream, a wrong key', async ({ assert }) => {
    const context = await browser.newContext({ locale: 'en-US', viewport: LAPTOP })
    const page = await context.newPage()
    await login(page, 'play-user@test.local', 'user-password')

    // A real key, made on the Keys page
    await page.getByRole('link', { name: 'API keys' }).first().click()
    await page.locator('#f-name').fill('playground')
    await page.getByRole('button', { name: 'Create key' }).click()
    const key = (await page.locator('[data-new-key]').innerText()).trim()
    assert.match(key, /^sk-gw-/)

    await page.getByRole('link', { name: 'Playground' }).first().click()
    await page.waitForURL(`${baseUrl()}/dashboard/playground`)
    assert.equal(await page.locator('h1').innerText(), 'Playground')
    assert.include(await page.locator('[data-key-note]').innerText(), 'never to this page')
    assert.equal(await shot(page, 'empty'), PHONE.width)
    assert.deepEqual(await page.locator('#pg-model option').evaluateAll((o) => o.map((x: any) => x.value)), ['mock-broken', 'mock-chat', 'mock-mini', 'mock-thinker', ''])

    // The key goes into this tab's sessionStorage, and survives a reload
    await page.locator('#pg-key').fill(key)
    assert.equal(await page.evaluate(`sessionStorage.getItem('gateway.playground.key')`), key)
    await page.reload()
    assert.equal(await page.locator('#pg-key').inputValue(), key)

    // Ctrl+Enter sends; the answer shows while the stream is still open
    await page.locator('#pg-model').selectOption('mock-chat')
    await page.locator('#pg-system').fill('You are terse.')
    await page.locator('#pg-message').fill('Say hello')
    await page.locator('#pg-message').press('Control+Enter')
    await untilStreaming(page, 0)
    const partial = (await page.locator('.turn--assistant .turn__text').textContent())!
    assert.isTrue(ANSWER.startsWith(partial))
    assert.isBelow(partial.length, ANSWER.length, 'tokens shown as they come, before the stream ends')
    await page.waitForSelector('.turn--assistant [data-meta]')
    assert.isTrue(await page.locator('#pg-stop').isHidden())
    assert.equal(await page.locator('.turn--assistant .turn__text').textContent(), ANSWER)
    assert.equal(await page.locator('#pg-transcript [data-injected]').count(), 0, 'markup in an answer stays text')
    assert.equal(await page.locator('.turn--user .turn__text').textContent(), 'Say hello')

    // The usage line: tokens (the mock counts 10 + 2 per message, a token per word), timings, request id
    const meta = page.locator('.turn--assistant [data-meta]').first()
    assert.equal(await meta.getAttribute('data-prompt-tokens'), '14')
    assert.equal(await meta.getAttribute('data-completion-tokens'), String(ANSWER.split(' ').length))
    const line = await meta.innerText()
    assert.match(line, new RegExp(`^14 prompt · ${ANSWER.split(' ').length} completion tokens · first token after [\\d,]+ ms · [\\d,]+ ms in all · request [0-9a-f-]{36}$`))
    const requestId = (await meta.locator('a').getAttribute('data-request-id'))!
    const [row] = await usageRows(userId)
    assert.equal(row.request_id, requestId)
    assert.isTrue(row.stream)
    assert.equal(row.prompt_tokens, 14)
    assert.equal(await page.locator('#pg-message').inputValue(), '', 'the box is emptied once sent')
    assert.equal(await shot(page, 'answered'), PHONE.width)

    // Multi-turn: the second call carries the system prompt and the first exchange
    await page.locator('#pg-message').fill('And again')
    await page.locator('#pg-send').click()
    await untilCount(page, '.turn--assistant [data-meta]', 2)
    const sent = JSON.parse(mock.requests.at(-1)!.body)
    assert.deepEqual(sent.messages, [
      { role: 'system', content: 'You are terse.' },
      { role: 'user', content: 'Say hello' },
      { role: 'assistant', content: ANSWER },
      { role: 'user', content: 'And again' },
    ])
    assert.isTrue(sent.stream)

    // Stop: a slow stream, stopped after its first words; what came is kept and marked
    mock.script({ chunk_delay_ms: 400 })
    await page.locator('#pg-message').fill('Take your time')
    await page.locator('#pg-message').press('Control+Enter')
    await untilStreaming(page, 2)
    await page.locator('#pg-stop').click()
    await untilCount(page, '.turn--assistant [data-meta]', 3)
    const stopped = page.locator('.turn--assistant').nth(2)
    assert.include(await stopped.locator('[data-meta]').innerText(), 'stopped')
    assert.isBelow((await stopped.locator('.turn__text').innerText()).length, ANSWER.length)
    assert.isTrue(await page.locator('#pg-send').isEnabled())

    // The upstream drops the connection mid-stream: the words that came stay, the gateway's error event under them
    mock.script({ reset_after: 3 })
    await page.locator('#pg-message').fill('Cut me off')
    await page.locator('#pg-message').press('Control+Enter')
    await untilCount(page, '.turn--assistant [data-meta]', 4)
    const cut = page.locator('.turn--assistant').nth(3)
    assert.equal(await cut.locator('.turn__text').textContent(), ANSWER.split(/(?<= )/).slice(0, 3).join(''))
    assert.isNotEmpty((await cut.locator('.turn__error').innerText()).trim())

    // Without streaming, with temperature and max tokens
    await page.locator('#pg-stream').uncheck()
    await page.locator('#pg-temperature').fill('0.35')
    await page.locator('#pg-max-tokens').fill('64')
    await page.locator('#pg-model').selectOption('mock-mini')
    await page.locator('#pg-message').fill('Once, whole')
    await page.locator('#pg-message').press('Control+Enter')
    await untilCount(page, '.turn--assistant [data-meta]', 5)
    const whole = page.locator('.turn--assistant').nth(4)
    assert.equal(await whole.locator('.turn__text').textContent(), ANSWER)
    assert.notInclude(await whole.locator('[data-meta]').innerText(), 'first token')
    const plain = JSON.parse(mock.requests.at(-1)!.body)
    assert.equal(plain.model, 'mock-mini')
    assert.isUndefined(plain.stream_options)
    assert.equal(plain.temperature, 0.35)
    assert.equal(plain.max_tokens, 64)

    // The request id opens the user's usage log entry, in a new tab: the conversation stays
    const [entry] = await Promise.all([context.waitForEvent('page'), meta.locator('a').click()])
    await entry.waitForLoadState()
    assert.match(entry.url(), /\/dashboard\/usage\/\d+$/)
    assert.equal(await entry.locator('[data-request-id]').innerText(), requestId)
    await entry.close()
    assert.equal(await page.locator('.turn--assistant [data-meta]').count(), 5)

    // A wrong key: the API's own 401 message, the user's message put back in the box
    const expected: any = await (await post('/v1/chat/completions', { model: 'mock-chat', messages: [] }, { authorization: 'Bearer sk-gw-wrong' })).json()
    await page.locator('#pg-key').fill('sk-gw-wrong')
    await page.locator('#pg-stream').check()
    await page.locator('#pg-message').fill('Who am I?')
    await page.locator('#pg-message').press('Control+Enter')
    const error = page.locator('.turn__error[data-status="401"]')
    await error.waitFor()
    assert.include(await error.innerText(), expected.error.message)
    assert.include(await error.innerText(), 'Check the key')
    assert.equal(await page.locator('#pg-message').inputValue(), 'Who am I?')
    assert.equal(await shot(page, 'wrong-key'), PHONE.width)

    // A provider that fails: the gateway's 5xx message, what to do, the request id to quote
    await page.locator('#pg-key').fill(key)
    await page.locator('#pg-model').selectOption('mock-broken')
    await page.locator('#pg-message').fill('Anyone there?')
    await page.locator('#pg-send').click()
    const failure = page.locator('.turn__error[data-status^="5"]')
    await failure.waitFor()
    assert.include(await failure.innerText(), 'The provider or the gateway failed')
    assert.match(await failure.innerText(), /request [0-9a-f-]{36}/)

    // Clear empties the conversation; Forget takes the key out of the tab
    await page.locator('#pg-clear').click()
    assert.equal(await page.locator('#pg-transcript .turn').count(), 0)
    assert.isTrue(await page.locator('[data-empty]').isVisible())
    await page.locator('#pg-key-forget').click()
    assert.equal(await page.locator('#pg-key').inputValue(), '')
    assert.isNull(await page.evaluate(`sessionStorage.getItem('gateway.playground.key')`))
    // Nothing sent without a key: the page says what is missing
    await page.locator('#pg-message').fill('Anyone?')
    const calls = mock.requests.length
    await page.locator('#pg-send').click()
    assert.include(await page.locator('.turn--error').innerText(), 'Paste an API key first')
    assert.equal(mock.requests.length, calls)
    await context.close()
  }).timeout(120_000)

  test("a key's rate limit: the 429's message and when to try again", async ({ assert }) => {
    const { key } = await createApiKey({ userRef: 'play-user@test.local', name: 'one-a-minute', rpm: 1 })
    await refreshCaches()
    const context = await browser.newContext({ locale: 'en-US', viewport: LAPTOP })
    const page = await context.newPage()
    await login(page, 'play-user@test.local', 'user-password')
    await page.goto(`${baseUrl()}/dashboard/playground`)
    await page.locator('#pg-key').fill(key)
    await page.locator('#pg-model').selectOption('mock-chat')
    for (const message of ['first', 'second']) {
      await page.locator('#pg-message').fill(message)
      await page.locator('#pg-message').press('Control+Enter')
      await untilIdle(page)
    }
    const error = page.locator('.turn__error[data-status="429"]')
    await error.waitFor()
    assert.match(await error.innerText(), /Try again in \d+ s\./)
    await context.close()
  }).timeout(60_000)

  test("a thinking model's reasoning shows apart from its answer, streamed or not", async ({ assert }) => {
    const { key } = await createApiKey({ userRef: 'play-user@test.local', name: 'thinking' })
    await refreshCaches()
    const context = await browser.newContext({ locale: 'en-US', viewport: LAPTOP })
    const page = await context.newPage()
    await login(page, 'play-user@test.local', 'user-password')
    await page.goto(`${baseUrl()}/dashboard/playground`)
    await page.locator('#pg-key').fill(key)
    await page.locator('#pg-model').selectOption('mock-thinker')
    for (const [n, stream] of [[1, true], [2, false]] as const) {
      await page.locator('#pg-stream').setChecked(stream)
      await page.locator('#pg-message').fill('Two plus two?')
      await page.locator('#pg-message').press('Control+Enter')
      await untilCount(page, '.turn--assistant [data-meta]', n)
      const turn = page.locator('.turn--assistant').nth(n - 1)
      assert.equal(await turn.locator('.turn__reasoning pre').textContent(), THINKING_TEXT)
      assert.isFalse(await turn.locator('.turn__reasoning').evaluate((d: any) => d.open), 'folded')
      assert.equal(await turn.locator('.turn__text').textContent(), 'Four.')
    }
    // The reasoning is not sent back as part of the conversation
    const sent = JSON.parse(thinker.requests.at(-1)!.body)
    assert.deepEqual(sent.messages[1], { role: 'assistant', content: 'Four.' })
    await context.close()
  }).timeout(60_000)
})
