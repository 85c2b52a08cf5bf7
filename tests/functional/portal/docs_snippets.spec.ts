import { test } from '@japa/runner'
import { execFile } from 'node:child_process'
import { statSync } from 'node:fs'
import { mkdir, writeFile, rm } from 'node:fs/promises'
import { promisify } from 'node:util'
import app from '@adonisjs/core/services/app'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { baseUrl, resetDatabase, seedChannel, seedUser, startMock, usageRows } from '#tests/helpers'
import { htmlText } from '#tests/page_client'
import { wavFile } from '#tests/fixtures/audio_files'
import { pngFile } from '#tests/fixtures/image_files'

const run = promisify(execFile)
/** Where the snippets run: they read speech.wav and cat.png and write hello.mp3 here. */
const scratch = () => app.makePath('tmp/docs_snippets')
const written = (name: string) => statSync(`${scratch()}/${name}`, { throwIfNoEntry: false })?.size ?? 0

/** Every snippet of one language on the rendered page, by endpoint id. */
function snippets(html: string, lang: string) {
  const found = new Map<string, string>()
  const re = new RegExp(`<code class="snippet-code" data-endpoint="([a-z_]+)" data-lang="${lang}"[^>]*>([\\s\\S]*?)</code>`, 'g')
  for (const match of html.matchAll(re)) found.set(match[1], htmlText(match[2]))
  return found
}

/** What each endpoint's snippet must print (curl: the raw answer; JS: what the snippet logs). */
const expectations: Record<string, { curl: (out: string) => boolean; javascript: (out: string) => boolean }> = {
  chat: {
    curl: (o) => JSON.parse(o).choices[0].message.content === 'Hello from the mock',
    javascript: (o) => o.trim() === 'Hello from the mock',
  },
  stream: {
    curl: (o) => o.includes('data: [DONE]') && o.includes('"delta"'),
    javascript: (o) => o.trim() === 'Hello from the mock',
  },
  responses: {
    curl: (o) => JSON.parse(o).object === 'response' && JSON.stringify(JSON.parse(o).output).includes('Hello from the mock'),
    javascript: (o) => o.trim() === 'Hello from the mock',
  },
  messages: {
    curl: (o) => JSON.parse(o).content[0].text === 'Hello from the mock',
    javascript: (o) => o.trim() === 'Hello from the mock',
  },
  gemini: {
    curl: (o) => JSON.parse(o).candidates[0].content.parts[0].text === 'Hello from the mock',
    javascript: (o) => o.trim() === 'Hello from the mock',
  },
  embeddings: {
    curl: (o) => Array.isArray(JSON.parse(o).data[0].embedding),
    javascript: (o) => Number(o.trim()) > 0,
  },
  images: {
    curl: (o) => JSON.parse(o).data.length === 1,
    javascript: (o) => o.trim().length > 0,
  },
  image_edits: {
    curl: (o) => JSON.parse(o).data.length === 1,
    javascript: (o) => o.trim().length > 0,
  },
  transcriptions: {
    curl: (o) => typeof JSON.parse(o).text === 'string',
    javascript: (o) => o.trim().length > 0,
  },
  speech: {
    curl: () => written('hello.mp3') > 0,
    javascript: (o) => Number(o.trim()) > 0 && written('hello.mp3') === Number(o.trim()),
  },
  completions: {
    curl: (o) => typeof JSON.parse(o).choices[0].text === 'string' && JSON.parse(o).object === 'text_completion',
    javascript: (o) => o.trim().length > 0,
  },
  rerank: {
    curl: (o) => Array.isArray(JSON.parse(o).results) && typeof JSON.parse(o).results[0].relevance_score === 'number',
    javascript: (o) => o.includes('relevance_score'),
  },
  moderations: {
    curl: (o) => JSON.parse(o).results[0].flagged === false,
    javascript: (o) => o.trim() === 'false',
  },
  models: {
    curl: (o) => JSON.parse(o).data.some((m: any) => m.id === 'mock-chat'),
    javascript: (o) => JSON.parse(o).data.some((m: any) => m.id === 'mock-chat'),
  },
  usage: {
    curl: (o) => JSON.parse(o).object === 'usage',
    javascript: (o) => JSON.parse(o).object === 'usage',
  },
  balance: {
    curl: (o) => JSON.parse(o).currency === 'USD',
    javascript: (o) => JSON.parse(o).currency === 'USD',
  },
}

test.group('/docs snippets run against the gateway', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock({ text: 'Hello from the mock' })
    await seedChannel({ name: 'mock', baseUrl: mock.url, models: ['mock-chat', 'text-embedding-3-small', 'gpt-image-1', 'jina-reranker-v2-base-multilingual', 'omni-moderation-latest', 'whisper-1', 'tts-1'] })
    await mkdir(scratch(), { recursive: true })
    await writeFile(`${scratch()}/speech.wav`, wavFile(1000))
    await writeFile(`${scratch()}/cat.png`, pngFile(8))
    return async () => {
      await mock.stop()
      await rm(scratch(), { recursive: true, force: true })
    }
  })

  test('every curl snippet, with a real key, gets the answer it promises', async ({ assert }) => {
    const user = await seedUser({ balance: '5' })
    const html = await (await fetch(`${baseUrl()}/docs`)).text()
    const curl = snippets(html, 'curl')
    assert.sameMembers([...curl.keys()], Object.keys(expectations))
    for (const [id, code] of curl) {
      assert.include(code, `${baseUrl()}`, id)
      assert.notInclude(code, user.key, 'the page never holds a key')
      await rm(`${scratch()}/hello.mp3`, { force: true })
      const { stdout } = await run('bash', ['-c', `${code} --silent --show-error --fail-with-body`], {
        cwd: scratch(),
        env: { ...process.env, GATEWAY_API_KEY: user.key },
        timeout: 20_000,
      })
      assert.isTrue(expectations[id].curl(stdout), `${id}: ${stdout.slice(0, 300)}`)
    }
    const rows = await usageRows(user.userId)
    assert.isAtLeast(rows.length, 7, 'generation snippets were metered')
  }).timeout(120_000)

  test('every JavaScript snippet runs with the official SDKs and prints the answer', async ({ assert }) => {
    const user = await seedUser({ balance: '5' })
    const html = await (await fetch(`${baseUrl()}/docs`)).text()
    const js = snippets(html, 'javascript')
    assert.sameMembers([...js.keys()], Object.keys(expectations))
    for (const [id, code] of js) {
      const file = `${scratch()}/${id}.mjs`
      await writeFile(file, code)
      await rm(`${scratch()}/hello.mp3`, { force: true })
      const { stdout } = await run(process.execPath, [file], {
        cwd: scratch(),
        env: { ...process.env, GATEWAY_API_KEY: user.key },
        timeout: 30_000,
      })
      assert.isTrue(expectations[id].javascript(stdout), `${id}: ${stdout.slice(0, 300)}`)
    }
  }).timeout(180_000)

  test('every Python snippet is valid Python (compiled; the openai package is not installed here)', async ({ assert }) => {
    const html = await (await fetch(`${baseUrl()}/docs`)).text()
    const python = snippets(html, 'python')
    assert.sameMembers([...python.keys()], Object.keys(expectations))
    const files: string[] = []
    for (const [id, code] of python) {
      files.push(`${scratch()}/${id}.py`)
      await writeFile(files.at(-1)!, code)
      assert.include(code, `${baseUrl()}`, id)
      assert.include(code, 'os.environ', id)
    }
    // One interpreter for all files; a syntax error names the file and line.
    await run('python3', ['-c', 'import ast, sys\nfor f in sys.argv[1:]: ast.parse(open(f).read(), f)', ...files], { timeout: 30_000 })
  })
})
