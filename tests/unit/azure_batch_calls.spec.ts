import { test } from '@japa/runner'
import { batchEndpointFor, channelRequest } from '#gateway/batches/upstream_calls'
import type { ChannelInfo, ProviderKind } from '#gateway/types'

function channel(baseUrl: string, provider: ProviderKind = 'azure'): ChannelInfo {
  return {
    id: 1,
    name: 'az',
    provider,
    baseUrl,
    apiKey: 'azkey',
    models: ['*'],
    modelMapping: {},
    extraHeaders: { 'x-extra': 'on' },
    priority: 0,
    weight: 1,
    enabled: true,
    disabledReason: null,
    timeouts: { connect: 1, firstByte: 1, idle: 1, total: 1 },
  }
}

test.group('Files / Batch API calls to Azure OpenAI channels', () => {
  test('classic: under /openai with the api-version (pasted or 2024-10-21) on every path, api-key, no Bearer', ({ assert }) => {
    const classic = channelRequest(channel('https://res.openai.azure.com/openai'), { method: 'GET', path: '/batches/b1' })
    assert.equal(classic.origin, 'https://res.openai.azure.com')
    assert.equal(classic.path, '/openai/batches/b1?api-version=2024-10-21')
    assert.equal(classic.headers['api-key'], 'azkey')
    assert.equal(classic.headers['x-extra'], 'on')
    assert.notProperty(classic.headers, 'authorization')
    const pasted = channelRequest(channel('https://res.openai.azure.com/openai?api-version=2025-04-01-preview'), {
      method: 'POST',
      path: '/files',
      body: 'x',
      contentType: 'multipart/form-data; boundary=b',
    })
    assert.equal(pasted.path, '/openai/files?api-version=2025-04-01-preview')
    assert.equal(pasted.headers['content-type'], 'multipart/form-data; boundary=b')
    // A path with its own query gets the version joined to it.
    assert.equal(channelRequest(channel('https://res.openai.azure.com/openai'), { method: 'GET', path: '/files?purpose=batch' }).path, '/openai/files?purpose=batch&api-version=2024-10-21')
  })

  test('v1: under /openai/v1 without api-version unless the base URL names one', ({ assert }) => {
    assert.equal(channelRequest(channel('https://res.openai.azure.com/openai/v1'), { method: 'GET', path: '/files/f1/content' }).path, '/openai/v1/files/f1/content')
    assert.equal(channelRequest(channel('https://res.openai.azure.com/openai/v1?api-version=preview'), { method: 'POST', path: '/batches', body: '{}' }).path, '/openai/v1/batches?api-version=preview')
  })

  test("a line's url and a batch's endpoint: Azure's without /v1, every other kind's as sent", ({ assert }) => {
    const azure = channel('https://res.openai.azure.com/openai')
    assert.equal(batchEndpointFor(azure, '/v1/chat/completions'), '/chat/completions')
    assert.equal(batchEndpointFor(azure, '/v1/embeddings'), '/embeddings')
    assert.equal(batchEndpointFor(channel('https://api.openai.com/v1', 'openai'), '/v1/chat/completions'), '/v1/chat/completions')
    assert.equal(channelRequest(channel('https://api.openai.com/v1', 'openai'), { method: 'GET', path: '/batches/b1' }).headers.authorization, 'Bearer azkey')
  })
})
