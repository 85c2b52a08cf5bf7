import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import ace from '@adonisjs/core/services/ace'
import { createUser } from '#actions/create_user'
import { createApiKey } from '#actions/issue_api_key'
import { setWordFilter, wordFilterSettings } from '#actions/set_word_filter'
import { cliActor } from '#actions/audit'
import WordsSet from '#commands/words_set'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { PanelClient } from '#tests/panel_client'
import { baseUrl, gateway, post, refreshCaches, resetDatabase, seedChannel, seedPrice, seedUser, startMock, usageRows, type SeededUser } from '#tests/helpers'

/**
 * The sensitive-word filter (new-api's CheckSensitiveWords): prompts with a
 * listed word are refused before routing, in each endpoint's own error
 * format, with one usage row and nothing sent or charged; answers may be
 * checked too. The setting reaches the running gateway through NOTIFY.
 */

/** The gateway hears of the change through NOTIFY: wait for it (no reload by hand). */
async function until(check: () => boolean | Promise<boolean>) {
  for (let i = 0; i < 60; i++) {
    if (await check()) return
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error('the setting never reached the gateway')
}

/** Saves the setting as the panel does and waits until the running gateway has it. */
async function filterOn(words: string[], extra: { checkCompletions?: boolean; hideMatches?: boolean } = {}) {
  await setWordFilter({ enabled: true, words, checkCompletions: false, hideMatches: false, ...extra }, cliActor())
  const gw = await gateway()
  await until(() => gw.catalog.wordFilter !== null && gw.catalog.wordFilter.matcher.entries.join('\n') === words.join('\n') && gw.catalog.wordFilter.checkCompletions === (extra.checkCompletions ?? false) && gw.catalog.wordFilter.hideMatches === (extra.hideMatches ?? false))
}

const bearer = (user: SeededUser) => ({ authorization: `Bearer ${user.key}` })

/** One call per checked endpoint, each with `text` in its prompt. */
function calls(text: string, user: SeededUser): Array<{ name: string; path: string; body: unknown; headers: Record<string, string>; format: 'openai' | 'anthropic' | 'google' }> {
  return [
    { name: 'chat', path: '/v1/chat/completions', format: 'openai', headers: bearer(user), body: { model: 'word-model', messages: [{ role: 'system', content: 'be nice' }, { role: 'user', content: [{ type: 'text', text }] }] } },
    { name: 'chat tool result', path: '/v1/chat/completions', format: 'openai', headers: bearer(user), body: { model: 'word-model', messages: [{ role: 'user', content: 'run it' }, { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '{}' } }] }, { role: 'tool', tool_call_id: 'c1', content: text }] } },
    { name: 'responses', path: '/v1/responses', format: 'openai', headers: bearer(user), body: { model: 'word-model', instructions: 'short answers', input: [{ type: 'message', role: 'user', content: [{ type: 'input_text', text }] }] } },
    { name: 'responses compact', path: '/v1/responses/compact', format: 'openai', headers: bearer(user), body: { model: 'word-model', input: [{ type: 'message', role: 'user', content: [{ type: 'input_text', text }] }] } },
    { name: 'responses instructions', path: '/v1/responses', format: 'openai', headers: bearer(user), body: { model: 'word-model', instructions: text, input: 'hello' } },
    { name: 'messages', path: '/v1/messages', format: 'anthropic', headers: { 'x-api-key': user.key, 'anthropic-version': '2023-06-01' }, body: { model: 'word-model', max_tokens: 16, messages: [{ role: 'user', content: text }] } },
    { name: 'messages system', path: '/v1/messages', format: 'anthropic', headers: { 'x-api-key': user.key, 'anthropic-version': '2023-06-01' }, body: { model: 'word-model', max_tokens: 16, system: [{ type: 'text', text }], messages: [{ role: 'user', content: 'hello' }] } },
    { name: 'gemini', path: '/v1beta/models/word-model:generateContent', format: 'google', headers: { 'x-goog-api-key': user.key }, body: { contents: [{ role: 'user', parts: [{ text }] }] } },
    { name: 'gemini stream systemInstruction', path: '/v1beta/models/word-model:streamGenerateContent?alt=sse', format: 'google', headers: { 'x-goog-api-key': user.key }, body: { systemInstruction: { parts: [{ text }] }, contents: [{ role: 'user', parts: [{ text: 'hello' }] }] } },
    { name: 'legacy completions', path: '/v1/completions', format: 'openai', headers: bearer(user), body: { model: 'word-model', prompt: text, max_tokens: 8 } },
    { name: 'embeddings', path: '/v1/embeddings', format: 'openai', headers: bearer(user), body: { model: 'word-embed', input: ['fine', text] } },
    { name: 'image prompt', path: '/v1/images/generations', format: 'openai', headers: bearer(user), body: { model: 'word-image', prompt: text } },
    { name: 'speech input', path: '/v1/audio/speech', format: 'openai', headers: bearer(user), body: { model: 'word-tts', input: text, voice: 'alloy' } },
  ]
}

test.group('Sensitive words: prompts refused before routing', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'word-mock', provider: 'custom', baseUrl: mock.url, models: ['word-*'] })
    await seedPrice('word-model', '100', '200')
    return () => mock.stop()
  })
  group.each.setup(async () => {
    await db.from('app_settings').where('key', 'sensitive_words').delete()
    const gw = await gateway()
    await until(() => gw.catalog.wordFilter === null)
  })

  test('every generation endpoint and embeddings: 400 sensitive_words_detected in its own format, naming the word; one row, nothing sent or charged', async ({ assert }) => {
    const user = await seedUser({ balance: '5' })
    await filterOn(['Forbidden Phrase', 'other'])
    const before = mock.requests.length
    const list = calls('please say the FORBIDDEN phrase now', user)
    for (const call of list) {
      const answer = await post(call.path, call.body, call.headers)
      const body = (await answer.json()) as any
      assert.equal(answer.status, 400, call.name)
      assert.isString(answer.headers.get('x-request-id'), call.name)
      if (call.format === 'openai') {
        assert.equal(body.error.code, 'sensitive_words_detected', call.name)
        assert.equal(body.error.type, 'invalid_request_error', call.name)
        assert.equal(body.error.message, 'The request was refused: it contains sensitive words: Forbidden Phrase', call.name)
      } else if (call.format === 'anthropic') {
        assert.deepEqual(body, { type: 'error', error: { type: 'invalid_request_error', message: 'The request was refused: it contains sensitive words: Forbidden Phrase' } }, call.name)
      } else {
        assert.deepEqual(body, { error: { code: 400, message: 'The request was refused: it contains sensitive words: Forbidden Phrase', status: 'INVALID_ARGUMENT' } }, call.name)
      }
    }
    assert.equal(mock.requests.length, before, 'nothing reached the upstream')
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, list.length)
    for (const row of rows) {
      assert.equal(row.status, 400)
      assert.equal(row.error_code, 'sensitive_words_detected')
      assert.equal(Number(row.cost), 0)
    }
    const balance = await db.from('users').where('id', user.userId).select('balance').first()
    assert.equal(Number(balance.balance), 5, 'nothing charged')
  })

  test('a clean prompt passes on every endpoint; moderations and token counts are not filtered', async ({ assert }) => {
    const user = await seedUser({ balance: '5' })
    await filterOn(['Forbidden Phrase'])
    for (const call of calls('a perfectly clean prompt', user)) {
      const answer = await post(call.path, call.body, call.headers)
      assert.equal(answer.status, 200, `${call.name}: ${await answer.clone().text()}`)
      await answer.arrayBuffer()
    }
    const counted = await post('/v1/messages/count_tokens', { model: 'word-model', messages: [{ role: 'user', content: 'forbidden phrase' }] }, { 'x-api-key': user.key, 'anthropic-version': '2023-06-01' })
    assert.notEqual(counted.status, 400)
    await counted.arrayBuffer()
  })

  test('re: entries match; several matches are named; "hide matched words" names none; image bytes are not read', async ({ assert }) => {
    const user = await seedUser({ balance: '5' })
    await filterOn(['re:\\d{3}-\\d{2}-\\d{4}', 're:free\\s+credits?', 'scam'])
    const chat = (content: unknown) => post('/v1/chat/completions', { model: 'word-model', messages: [{ role: 'user', content }] }, bearer(user))
    let answer = await chat('my number is 123-45-6789, a SCAM?')
    assert.equal(answer.status, 400)
    assert.equal(((await answer.json()) as any).error.message, 'The request was refused: it contains sensitive words: re:\\d{3}-\\d{2}-\\d{4}, scam')
    answer = await chat('FREE   Credits')
    assert.equal(((await answer.json()) as any).error.message, 'The request was refused: it contains sensitive words: re:free\\s+credits?')
    // "scam" as base64 image data is no text: 'c2NhbQ==' decodes to scam, and a data URL holding it is not read.
    answer = await chat([{ type: 'text', text: 'what is this?' }, { type: 'image_url', image_url: { url: 'data:image/png;base64,scamscamscam' } }])
    assert.equal(answer.status, 200, await answer.clone().text())
    await answer.arrayBuffer()

    await filterOn(['re:\\d{3}-\\d{2}-\\d{4}', 're:free\\s+credits?', 'scam'], { hideMatches: true })
    answer = await chat('a scam')
    const body = (await answer.json()) as any
    assert.equal(answer.status, 400)
    assert.equal(body.error.code, 'sensitive_words_detected')
    assert.equal(body.error.message, 'The request was refused: it contains words this service does not allow')
  })

  test('a change reaches the running gateway without a restart, whoever writes it (NOTIFY on app_settings)', async ({ assert }) => {
    const user = await seedUser({ balance: '5' })
    const chat = async () => {
      const answer = await post('/v1/chat/completions', { model: 'word-model', messages: [{ role: 'user', content: 'a blocked word' }] }, bearer(user))
      await answer.arrayBuffer()
      return answer.status
    }
    assert.equal(await chat(), 200)
    // Written as another instance or psql would: no call into this process's caches.
    await db.rawQuery(`INSERT INTO app_settings (key, value) VALUES ('sensitive_words', ?::jsonb) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`, [
      JSON.stringify({ enabled: true, words: ['blocked'], checkCompletions: false, hideMatches: false }),
    ])
    let status = 0
    await until(async () => (status = await chat()) === 400)
    assert.equal(status, 400)
    await db.rawQuery(`UPDATE app_settings SET value = jsonb_set(value, '{enabled}', 'false') WHERE key = 'sensitive_words'`)
    await until(async () => (status = await chat()) === 200)
    assert.equal(status, 200)
    // A hand-written list that does not compile keeps the last good filter (and is logged).
    await setWordFilter({ enabled: true, words: ['blocked'] }, cliActor())
    await until(async () => (await chat()) === 400)
    await db.rawQuery(`UPDATE app_settings SET value = jsonb_set(value, '{words}', '["re:(a)\\\\1"]') WHERE key = 'sensitive_words'`)
    await new Promise((r) => setTimeout(r, 300))
    assert.equal(await chat(), 400, 'the last good list still applies')
  })

  test('answers: with "prompts and answers", a listed word in a whole answer withholds it; its tokens are still billed', async ({ assert }) => {
    const user = await seedUser({ balance: '5' })
    await filterOn(['secretsauce'], { checkCompletions: true })
    mock.script({ text: 'the recipe is SecretSauce indeed' })
    const chat = await post('/v1/chat/completions', { model: 'word-model', messages: [{ role: 'user', content: 'recipe?' }] }, bearer(user))
    assert.equal(chat.status, 400)
    assert.deepEqual(((await chat.json()) as any).error, { message: 'The answer was withheld: it contains sensitive words: secretsauce', type: 'invalid_request_error', param: null, code: 'sensitive_words_detected' })
    // Translated (Anthropic client, OpenAI-format upstream)
    mock.script({ text: 'the recipe is SecretSauce indeed' })
    const messages = await post('/v1/messages', { model: 'word-model', max_tokens: 16, messages: [{ role: 'user', content: 'recipe?' }] }, { 'x-api-key': user.key, 'anthropic-version': '2023-06-01' })
    assert.equal(messages.status, 400)
    assert.equal(((await messages.json()) as any).error.type, 'invalid_request_error')
    mock.script({ text: 'the recipe is SecretSauce indeed' })
    const legacy = await post('/v1/completions', { model: 'word-model', prompt: 'recipe?', max_tokens: 8 }, bearer(user))
    assert.equal(legacy.status, 400)
    assert.equal(((await legacy.json()) as any).error.code, 'sensitive_words_detected')
    // A streamed answer is checked as it streams (sensitive_word_streams.spec.ts): stopped at the word, the row marked.
    mock.script({ text: 'the recipe is SecretSauce indeed' })
    const streamed = await post('/v1/chat/completions', { model: 'word-model', stream: true, messages: [{ role: 'user', content: 'recipe?' }] }, bearer(user))
    assert.equal(streamed.status, 200)
    const streamedText = await streamed.text()
    assert.notInclude(streamedText, 'SecretSauce')
    assert.include(streamedText, '"finish_reason":"content_filter"')

    const rows = await usageRows(user.userId)
    assert.deepEqual(rows.map((r) => [r.status, r.error_code]), [[400, 'sensitive_words_detected'], [400, 'sensitive_words_detected'], [400, 'sensitive_words_detected'], [200, 'sensitive_words_detected']])
    for (const row of rows.slice(0, 3)) {
      assert.isAbove(Number(row.completion_tokens), 0)
      assert.isAbove(Number(row.cost), 0, 'the upstream was paid: the tokens are billed')
    }
    // With "prompts only", the same answer goes through.
    await filterOn(['secretsauce'])
    mock.script({ text: 'the recipe is SecretSauce indeed' })
    const allowed = await post('/v1/chat/completions', { model: 'word-model', messages: [{ role: 'user', content: 'recipe?' }] }, bearer(user))
    assert.equal(allowed.status, 200)
    await allowed.arrayBuffer()
  })
})

test.group('Sensitive words: the setting (panel, ace, management API)', (group) => {
  group.setup(async () => {
    await resetDatabase()
  })

  test('the Settings page saves it, audited; a pathological or unsupported pattern is refused at save time beside the field', async ({ assert }) => {
    await createUser({ email: 'words-admin@test.local', password: 'password123', role: 'admin' })
    const panel = new PanelClient()
    await panel.login('words-admin@test.local', 'password123')
    assert.include((await panel.get('/admin/settings')).html, 'data-sensitive-words-form')
    const saved = await panel.post('/admin/settings/sensitive-words', { enabled: ['0', '1'], words: 'casino\r\n\r\nre:free\\s+spins\n', scope: 'prompt_and_completion', hideMatches: '0' })
    assert.equal(saved.location, '/admin/settings#sensitive-words')
    assert.deepEqual(await wordFilterSettings(), { enabled: true, words: ['casino', 're:free\\s+spins'], checkCompletions: true, hideMatches: false })
    const page = await panel.get('/admin/settings')
    assert.include(page.html, 'casino\nre:free\\s+spins')

    for (const [words, reason] of [
      ['casino\nre:(a|b)*a(a|b){15}', 'too large an automaton'],
      ['re:(x)\\1', 'back-references'],
      ['re:a{5000}', 'a count above 100'],
    ]) {
      await panel.get('/admin/settings')
      const refused = await panel.follow(await panel.post('/admin/settings/sensitive-words', { enabled: ['0', '1'], words, scope: 'prompt', hideMatches: '0' }))
      assert.include(refused.html, reason)
    }
    assert.deepEqual((await wordFilterSettings()).words, ['casino', 're:free\\s+spins'], 'nothing saved')
    const audit = await db.from('audit_log').where('action', 'settings.sensitive_words')
    assert.lengthOf(audit, 1)
    assert.include(audit[0].summary, 'Sensitive-word filter on (2 entries; prompts and answers)')
  })

  test('words:set and PATCH /api/admin/settings/sensitive-words', async ({ assert }) => {
    await db.from('app_settings').where('key', 'sensitive_words').delete()
    const on = await ace.create(WordsSet, ['--on', '--word', 'alpha', '--word', 're:be+ta', '--hide-matches'])
    await on.exec()
    assert.equal(on.exitCode, 0)
    assert.deepEqual(await wordFilterSettings(), { enabled: true, words: ['alpha', 're:be+ta'], checkCompletions: false, hideMatches: true })
    const bad = await ace.create(WordsSet, ['--word', 're:(?<=x)y'])
    await bad.exec()
    assert.equal(bad.exitCode, 1)
    const off = await ace.create(WordsSet, ['--off'])
    await off.exec()
    assert.isFalse((await wordFilterSettings()).enabled)
    assert.deepEqual((await wordFilterSettings()).words, ['alpha', 're:be+ta'], 'off keeps the list')

    await createUser({ email: 'words-ops@test.local', password: 'password123', role: 'admin' })
    const key = (await createApiKey({ userRef: 'words-ops@test.local', name: 'ops', manage: true })).key
    await refreshCaches()
    const api = async (method: string, body?: unknown) => {
      const response = await fetch(`${baseUrl()}/api/admin/settings/sensitive-words`, {
        method,
        headers: { authorization: `Bearer ${key}`, ...(body ? { 'content-type': 'application/json' } : {}) },
        body: body ? JSON.stringify(body) : undefined,
      })
      return { status: response.status, body: (await response.json()) as any }
    }
    assert.deepEqual((await api('GET')).body, { object: 'sensitive_words', enabled: false, words: ['alpha', 're:be+ta'], check: 'prompt', hide_matches: true })
    const patched = await api('PATCH', { enabled: true, words: ['gamma'], check: 'prompt_and_completion', hide_matches: false })
    assert.deepEqual(patched, { status: 200, body: { object: 'sensitive_words', enabled: true, words: ['gamma'], check: 'prompt_and_completion', hide_matches: false } })
    const refused = await api('PATCH', { words: ['re:(a|b)*a(a|b){15}'] })
    assert.equal(refused.status, 400)
    assert.equal(refused.body.error.code, 'invalid_field')
    assert.equal(refused.body.error.param, 'words')
    assert.include(refused.body.error.message, 'too large an automaton')
    assert.equal((await api('PATCH', { check: 'everything' })).status, 400)
    const sources = await db.from('audit_log').where('action', 'settings.sensitive_words').orderBy('id').select('source')
    assert.deepEqual(sources.map((s: any) => s.source), ['panel', 'cli', 'cli', 'api'], 'the panel test before, then these')
  })
})
