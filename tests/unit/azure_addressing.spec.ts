import { test } from '@japa/runner'
import { azureAdapter, azureAddressing, azurePath } from '#gateway/providers/azure/azure_adapter'
import type { ChannelInfo } from '#gateway/types'
import type { UpstreamCall } from '#gateway/providers/provider_adapter'
import { channelRequest } from '#gateway/batches/upstream_calls'

function channel(baseUrl: string): ChannelInfo {
  return {
    id: 1,
    name: 'az',
    provider: 'azure',
    baseUrl,
    apiKey: 'azkey',
    models: ['*'],
    modelMapping: {},
    extraHeaders: {},
    priority: 0,
    weight: 1,
    enabled: true,
    disabledReason: null,
    timeouts: { connect: 1, firstByte: 1, idle: 1, total: 1 },
  }
}

const call = (operation: UpstreamCall['operation'], dialect: UpstreamCall['dialect'] = 'openai_chat'): UpstreamCall => ({
  operation,
  dialect,
  model: 'my-gpt4o',
  stream: false,
  body: '{}',
  clientHeaders: { authorization: 'Bearer client-key' },
})

test.group('Azure OpenAI addressing', () => {
  test('classic base: the deployment in the path, the default api-version, api-key auth', ({ assert }) => {
    const c = channel('https://res.openai.azure.com/openai')
    const request = azureAdapter.request(c, call('generate'))
    assert.equal(request.origin, 'https://res.openai.azure.com')
    assert.equal(request.path, '/openai/deployments/my-gpt4o/chat/completions?api-version=2024-10-21')
    assert.equal(request.headers['api-key'], 'azkey')
    assert.notProperty(request.headers, 'authorization')
    assert.equal(azureAdapter.request(c, call('embeddings')).path, '/openai/deployments/my-gpt4o/embeddings?api-version=2024-10-21')
    assert.equal(azureAdapter.request(c, call('images')).path, '/openai/deployments/my-gpt4o/images/generations?api-version=2024-10-21')
    assert.equal(azureAdapter.request(c, call('completions')).path, '/openai/deployments/my-gpt4o/completions?api-version=2024-10-21')
    assert.equal(
      azureAdapter.request(c, call('audio_transcriptions')).path,
      '/openai/deployments/my-gpt4o/audio/transcriptions?api-version=2024-10-21'
    )
    assert.equal(azureAdapter.request(c, call('audio_speech')).path, '/openai/deployments/my-gpt4o/audio/speech?api-version=2024-10-21')
    // Responses: no deployment in the path, a version that serves it.
    assert.equal(azureAdapter.request(c, call('generate', 'openai_responses')).path, '/openai/responses?api-version=2025-03-01-preview')
    const models = azureAdapter.modelsPath(c)
    assert.equal(`${models.origin}${models.path}`, 'https://res.openai.azure.com/openai/models?api-version=2024-10-21')
    assert.equal(models.headers['api-key'], 'azkey')
  })

  test('classic base with a pasted api-version: used for every call, Responses too when recent enough', ({ assert }) => {
    const old = azureAddressing('https://res.openai.azure.com/openai?api-version=2024-06-01')
    assert.equal(azurePath(old, '/chat/completions', 'd'), '/openai/deployments/d/chat/completions?api-version=2024-06-01')
    assert.equal(azurePath(old, '/responses', 'd', true), '/openai/responses?api-version=2025-03-01-preview')
    const recent = azureAddressing('https://res.openai.azure.com/openai?api-version=2025-04-01-preview')
    assert.equal(azurePath(recent, '/responses', 'd', true), '/openai/responses?api-version=2025-04-01-preview')
    // A pasted value is one parameter, whatever it holds; an empty one is none
    const tricky = azureAddressing('https://res.openai.azure.com/openai?api-version=2024-10-21%26deployment%3Dother%23x')
    assert.equal(azurePath(tricky, '/chat/completions', 'd'), '/openai/deployments/d/chat/completions?api-version=2024-10-21%26deployment%3Dother%23x')
    assert.equal(azurePath(azureAddressing('https://res.openai.azure.com/openai?api-version='), '/chat/completions', 'd'), '/openai/deployments/d/chat/completions?api-version=2024-10-21')
    assert.equal(azureAddressing('https://res.openai.azure.com/openai/v1?api-version=').query, '')
  })

  test('v1 base: OpenAI paths with the model in the body, no api-version unless pasted', ({ assert }) => {
    const c = channel('https://res.openai.azure.com/openai/v1')
    assert.equal(azureAdapter.request(c, call('generate')).path, '/openai/v1/chat/completions')
    assert.equal(azureAdapter.request(c, call('generate', 'openai_responses')).path, '/openai/v1/responses')
    assert.equal(azureAdapter.request(c, call('embeddings')).path, '/openai/v1/embeddings')
    assert.equal(azureAdapter.modelsPath(c).path, '/openai/v1/models')
    const preview = azureAddressing('https://res.openai.azure.com/openai/v1?api-version=preview')
    assert.equal(azurePath(preview, '/chat/completions', 'd'), '/openai/v1/chat/completions?api-version=preview')
  })

  test('image edits: the deployment in the path at a version that serves them (2025-04-01-preview on); v1 as OpenAI', ({ assert }) => {
    const classic = channel('https://res.openai.azure.com/openai')
    assert.equal(azureAdapter.request(classic, call('image_edits')).path, '/openai/deployments/my-gpt4o/images/edits?api-version=2025-04-01-preview')
    const old = channel('https://res.openai.azure.com/openai?api-version=2024-06-01')
    assert.equal(azureAdapter.request(old, call('image_edits')).path, '/openai/deployments/my-gpt4o/images/edits?api-version=2025-04-01-preview')
    // The pasted version still addresses the other calls.
    assert.equal(azureAdapter.request(old, call('images')).path, '/openai/deployments/my-gpt4o/images/generations?api-version=2024-06-01')
    const recent = channel('https://res.openai.azure.com/openai?api-version=2025-06-01-preview')
    assert.equal(azureAdapter.request(recent, call('image_edits')).path, '/openai/deployments/my-gpt4o/images/edits?api-version=2025-06-01-preview')
    assert.equal(azureAdapter.request(channel('https://res.openai.azure.com/openai/v1'), call('image_edits')).path, '/openai/v1/images/edits')
    // dall-e-2 (variations) is not deployed on Azure.
    assert.isFalse(azureAdapter.offers(classic, 'image_variations'))
    assert.isTrue(azureAdapter.offers(classic, 'image_edits'))
  })

  test('no rerank or moderations; chat and responses spoken natively', ({ assert }) => {
    const c = channel('https://res.openai.azure.com/openai')
    assert.isFalse(azureAdapter.offers(c, 'rerank'))
    assert.isFalse(azureAdapter.offers(c, 'moderations'))
    assert.isTrue(azureAdapter.offers(c, 'audio') && azureAdapter.offers(c, 'images') && azureAdapter.offers(c, 'completions'))
    assert.deepEqual([...azureAdapter.dialects()], ['openai_chat', 'openai_responses'])
    assert.equal(azureAdapter.encodeHints()?.maxTokensField, 'max_completion_tokens')
    void c
  })
  test("the Videos API (Sora 2): at the v1 API whatever the base's shape; a classic base's dated api-version left off, a v1 base's pasted one kept", ({ assert }) => {
    const video = (base: string, path: string) => {
      const request = channelRequest(channel(base), { method: 'GET', path, azureV1: true })
      return `${request.origin}${request.path}`
    }
    assert.equal(video('https://res.openai.azure.com/openai', '/videos/v1'), 'https://res.openai.azure.com/openai/v1/videos/v1')
    assert.equal(video('https://res.openai.azure.com/openai?api-version=2024-10-21', '/videos/v1/content?variant=thumbnail'), 'https://res.openai.azure.com/openai/v1/videos/v1/content?variant=thumbnail')
    assert.equal(video('https://res.openai.azure.com/openai/v1', '/videos'), 'https://res.openai.azure.com/openai/v1/videos')
    assert.equal(video('https://res.openai.azure.com/openai/v1?api-version=preview', '/videos/v1/content?variant=spritesheet'), 'https://res.openai.azure.com/openai/v1/videos/v1/content?variant=spritesheet&api-version=preview')
    const request = channelRequest(channel('https://res.openai.azure.com/openai'), { method: 'POST', path: '/videos', body: '{}', azureV1: true })
    assert.equal(request.headers['api-key'], 'azkey')
    assert.isUndefined(request.headers.authorization)
    // Without it (the Files and Batch API): the base's own shape and version, as before.
    assert.equal(channelRequest(channel('https://res.openai.azure.com/openai'), { method: 'GET', path: '/files' }).path, '/openai/files?api-version=2024-10-21')
  })
})
