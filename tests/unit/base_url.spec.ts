import { test } from '@japa/runner'
import { BaseUrlError, describeNotFound, normaliseBaseUrl } from '#gateway/providers/base_url'
import { VENDORS } from '#gateway/providers/vendors'
import { PROVIDER_KINDS, type ProviderKind } from '#gateway/types'

/** Pasted base URL -> the canonical one, per provider kind (forms from the vendors' docs and SDKs). */
const CASES: [ProviderKind, string, string][] = [
  // Anthropic's SDKs and Claude Code take the base without /v1 (ANTHROPIC_BASE_URL) and add /v1/messages.
  ['anthropic', 'https://api.anthropic.com', 'https://api.anthropic.com/v1'],
  ['anthropic', 'https://api.anthropic.com/', 'https://api.anthropic.com/v1'],
  ['anthropic', 'https://api.anthropic.com/v1', 'https://api.anthropic.com/v1'],
  ['anthropic', 'https://api.anthropic.com/v1/', 'https://api.anthropic.com/v1'],
  ['anthropic', 'https://api.anthropic.com/v1/messages', 'https://api.anthropic.com/v1'],
  ['anthropic', 'https://api.anthropic.com/v1/models', 'https://api.anthropic.com/v1'],
  ['anthropic', 'https://api.deepseek.com/anthropic', 'https://api.deepseek.com/anthropic/v1'],
  ['anthropic', 'https://api.z.ai/api/anthropic/', 'https://api.z.ai/api/anthropic/v1'],
  // Google's SDKs and Gemini CLI take the bare host and add the API version.
  ['google', 'https://generativelanguage.googleapis.com', 'https://generativelanguage.googleapis.com/v1beta'],
  ['google', 'https://generativelanguage.googleapis.com/v1beta/', 'https://generativelanguage.googleapis.com/v1beta'],
  ['google', 'https://generativelanguage.googleapis.com/v1', 'https://generativelanguage.googleapis.com/v1'],
  [
    'google',
    'https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent',
    'https://generativelanguage.googleapis.com/v1beta',
  ],
  ['google', 'https://generativelanguage.googleapis.com/v1beta/models', 'https://generativelanguage.googleapis.com/v1beta'],
  ['google', 'https://proxy.example.com/google-ai-studio', 'https://proxy.example.com/google-ai-studio/v1beta'],
  // Gemini's OpenAI-compatible endpoint.
  ['gemini', 'https://generativelanguage.googleapis.com', 'https://generativelanguage.googleapis.com/v1beta/openai'],
  ['gemini', 'https://generativelanguage.googleapis.com/v1beta', 'https://generativelanguage.googleapis.com/v1beta/openai'],
  ['gemini', 'https://generativelanguage.googleapis.com/v1beta/openai/', 'https://generativelanguage.googleapis.com/v1beta/openai'],
  // OpenAI-compatible: a bare host gets /v1, any other path is the server's own.
  ['openai', 'https://api.openai.com', 'https://api.openai.com/v1'],
  ['openai', 'https://api.openai.com/v1/', 'https://api.openai.com/v1'],
  ['openai', 'https://api.openai.com/v1/chat/completions', 'https://api.openai.com/v1'],
  ['openai', 'https://api.openai.com/v1/models', 'https://api.openai.com/v1'],
  ['openai', 'https://gateway.example.com/openai', 'https://gateway.example.com/openai'],
  ['openrouter', 'https://openrouter.ai/api', 'https://openrouter.ai/api/v1'],
  ['openrouter', 'https://openrouter.ai/api/', 'https://openrouter.ai/api/v1'],
  ['openrouter', 'https://openrouter.ai', 'https://openrouter.ai/api/v1'],
  ['openrouter', 'https://openrouter.ai/api/v1', 'https://openrouter.ai/api/v1'],
  ['deepseek', 'https://api.deepseek.com', 'https://api.deepseek.com/v1'],
  ['deepseek', 'https://api.deepseek.com/v1/', 'https://api.deepseek.com/v1'],
  ['deepseek', 'https://api.deepseek.com/beta', 'https://api.deepseek.com/beta'],
  ['deepseek', 'https://api.deepseek.com/beta/completions', 'https://api.deepseek.com/beta'],
  ['openai', 'https://api.openai.com/v1/completions', 'https://api.openai.com/v1'],
  ['zai', 'https://api.z.ai', 'https://api.z.ai/api/paas/v4'],
  ['zai', 'https://api.z.ai/api/paas', 'https://api.z.ai/api/paas/v4'],
  ['zai', 'https://api.z.ai/api/paas/v4/', 'https://api.z.ai/api/paas/v4'],
  ['zai', 'https://api.z.ai/api/coding/paas/v4', 'https://api.z.ai/api/coding/paas/v4'],
  ['zai', 'https://open.bigmodel.cn/api/paas/v4/chat/completions', 'https://open.bigmodel.cn/api/paas/v4'],
  // Local servers: vLLM, Ollama, LM Studio.
  ['custom', 'http://localhost:8000', 'http://localhost:8000/v1'],
  ['custom', 'http://localhost:8000/v1', 'http://localhost:8000/v1'],
  ['custom', 'http://127.0.0.1:11434/', 'http://127.0.0.1:11434/v1'],
  ['custom', 'http://127.0.0.1:11434/v1/', 'http://127.0.0.1:11434/v1'],
  ['custom', 'http://LocalHost:1234//v1//', 'http://localhost:1234/v1'],
  ['custom', 'https://x.services.ai.azure.com/models', 'https://x.services.ai.azure.com/models'],
  ['custom', ' https://api.example.com:443/v1 ', 'https://api.example.com/v1'],
  // Azure OpenAI: the resource host gets /openai (classic); /openai/v1 is the v1 API; api-version is kept.
  ['azure', 'https://res.openai.azure.com', 'https://res.openai.azure.com/openai'],
  ['azure', 'https://Res.openai.azure.com/', 'https://res.openai.azure.com/openai'],
  ['azure', 'https://res.openai.azure.com/openai/', 'https://res.openai.azure.com/openai'],
  ['azure', 'https://res.openai.azure.com/openai/v1/', 'https://res.openai.azure.com/openai/v1'],
  ['azure', 'https://res.openai.azure.com/openai/v1/chat/completions', 'https://res.openai.azure.com/openai/v1'],
  ['azure', 'https://res.openai.azure.com/openai?api-version=2024-06-01', 'https://res.openai.azure.com/openai?api-version=2024-06-01'],
  ['azure', 'https://res.openai.azure.com?api-version=2024-06-01', 'https://res.openai.azure.com/openai?api-version=2024-06-01'],
  [
    'azure',
    'https://res.openai.azure.com/openai/deployments/my-gpt4o/chat/completions?api-version=2025-01-01-preview',
    'https://res.openai.azure.com/openai?api-version=2025-01-01-preview',
  ],
  ['azure', 'https://res.cognitiveservices.azure.com/openai/deployments/emb/embeddings', 'https://res.cognitiveservices.azure.com/openai'],
]

test.group('Base URLs as people paste them', () => {
  test('{$i}: {0} {1}')
    .with(CASES)
    .run(({ assert }, [kind, pasted, canonical]) => {
      assert.equal(normaliseBaseUrl(kind, pasted), canonical)
      // Idempotent: the stored form stays as it is.
      assert.equal(normaliseBaseUrl(kind, canonical), canonical)
    })

  test('every kind keeps its default base URL, and completes a bare host to it', ({ assert }) => {
    for (const kind of PROVIDER_KINDS) {
      const url = VENDORS[kind].defaultBaseUrl
      if (!url) continue
      assert.equal(normaliseBaseUrl(kind, url), url, kind)
      assert.equal(normaliseBaseUrl(kind, `${new URL(url).origin}/`), url, kind)
    }
  })

  test('refuses what would silently not be sent upstream, saying what to do', ({ assert }) => {
    assert.throws(
      () => normaliseBaseUrl('google', 'https://generativelanguage.googleapis.com/v1beta?key=AIza'),
      /query string is not sent upstream: remove it and give the key as the channel's API key/
    )
    assert.throws(() => normaliseBaseUrl('custom', 'https://user:pw@example.com/v1'), /Credentials in the base URL/)
    assert.throws(() => normaliseBaseUrl('custom', 'http://example.com/v1#x'), /fragment/)
    assert.throws(() => normaliseBaseUrl('custom', 'ftp://example.com/v1'), /http:\/\/ or https:\/\//)
    assert.throws(() => normaliseBaseUrl('anthropic', 'api.anthropic.com'), /expected one like https:\/\/api\.anthropic\.com\/v1/)
    assert.throws(() => normaliseBaseUrl('custom', 'nope'), BaseUrlError)
    // Only Azure keeps a query, and only its api-version.
    assert.throws(() => normaliseBaseUrl('openai', 'https://api.openai.com/v1?api-version=2024-10-21'), /query string is not sent upstream/)
    assert.throws(() => normaliseBaseUrl('azure', 'https://res.openai.azure.com/openai?api-version=1&x=2'), /query string is not sent upstream/)
    assert.throws(() => normaliseBaseUrl('azure', 'https://res.openai.azure.com/openai?api-version=a b'), /not a version/)
  })

  test('a 404 names the URL called, the base URL and the form the kind expects', ({ assert }) => {
    const message = describeNotFound(
      { provider: 'anthropic', baseUrl: 'https://proxy.example.com/claude' },
      { origin: 'https://proxy.example.com', path: '/claude/messages' },
      'Not Found'
    )
    assert.include(message, 'HTTP 404 from POST https://proxy.example.com/claude/messages (Not Found)')
    assert.include(message, "channel's base URL https://proxy.example.com/claude")
    assert.include(message, 'provider kind anthropic expects https://api.anthropic.com/v1')
  })
})
