/* `npm run mock-upstream`: the mock OpenAI-compatible upstream of tests/fixtures, on its own. */
await import('@poppinss/ts-exec')
await import('../tests/fixtures/mock_upstream/main.js')
