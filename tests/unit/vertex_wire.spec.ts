import { test } from '@japa/runner'
import { createVerify, generateKeyPairSync } from 'node:crypto'
import { normaliseBaseUrl } from '#gateway/providers/base_url'
import { accountKey, freshForMs, signedAssertion, SCOPE } from '#gateway/providers/vertex/google_token'
import { vertexAdapter } from '#gateway/providers/vertex/vertex_adapter'
import { parseVertexKey, vertexLocation, vertexModelsPrefix, type ServiceAccount } from '#gateway/providers/vertex/vertex_settings'
import { upstreamDialect } from '#gateway/providers/registry'
import { withoutChannelSecrets } from '#gateway/upstream/channel_secrets'
import type { ChannelInfo } from '#gateway/types'

const pair = generateKeyPairSync('rsa', { modulusLength: 2048 })
const PEM = pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
const KEY = JSON.stringify({ type: 'service_account', project_id: 'proj-1', private_key_id: 'abcdef0123456789abcdef', private_key: PEM, client_email: 'sa@proj-1.iam.gserviceaccount.com' })

function channel(baseUrl: string, apiKey: string): ChannelInfo {
  return {
    id: 1, name: 'v', provider: 'vertex', baseUrl, apiKey, models: [], modelMapping: {}, extraHeaders: {},
    priority: 0, weight: 1, enabled: true, disabledReason: null,
    timeouts: { connect: 1000, firstByte: 1000, idle: 1000, total: 1000 },
  }
}

test.group('Vertex AI wire', () => {
  test('base URL: a bare location, the Google hosts, a project path, another base with ?location=; none refused', ({ assert }) => {
    assert.equal(normaliseBaseUrl('vertex', 'europe-west4'), 'https://europe-west4-aiplatform.googleapis.com/v1')
    assert.equal(normaliseBaseUrl('vertex', 'global'), 'https://aiplatform.googleapis.com/v1')
    assert.equal(normaliseBaseUrl('vertex', 'https://us-east5-aiplatform.googleapis.com/'), 'https://us-east5-aiplatform.googleapis.com/v1')
    assert.equal(normaliseBaseUrl('vertex', 'http://proxy:8080/v1?location=us-central1&project=p-2'), 'http://proxy:8080/v1?location=us-central1&project=p-2')
    assert.equal(vertexLocation('https://us-east5-aiplatform.googleapis.com/v1'), 'us-east5')
    assert.equal(vertexLocation('https://aiplatform.googleapis.com/v1'), 'global')
    assert.equal(vertexLocation('http://proxy/v1/projects/p/locations/asia-northeast1'), 'asia-northeast1')
    assert.throws(() => normaliseBaseUrl('vertex', 'http://proxy:8080/v1'), /names its location/)
  })

  test('keys: a service account JSON, an express API key, an access token, a broken JSON', ({ assert }) => {
    const sa = parseVertexKey(KEY)
    assert.equal(sa.kind, 'service_account')
    assert.equal(sa.kind === 'service_account' && sa.account.tokenUri, 'https://oauth2.googleapis.com/token')
    assert.deepEqual(parseVertexKey('AQ.Ab8RN6k'), { kind: 'api_key', key: 'AQ.Ab8RN6k' })
    assert.deepEqual(parseVertexKey('ya29.a0AfB'), { kind: 'bearer', token: 'ya29.a0AfB' })
    assert.equal(parseVertexKey('{"type":').kind, 'invalid')
    assert.equal(parseVertexKey('{"project_id":"p"}').kind, 'invalid')
  })

  test("paths: the project from the key or ?project=, a base's own project path, express mode's bare base", ({ assert }) => {
    const sa = parseVertexKey(KEY)
    assert.equal(vertexModelsPrefix('https://us-east5-aiplatform.googleapis.com/v1', '/v1', sa), '/v1/projects/proj-1/locations/us-east5')
    assert.equal(vertexModelsPrefix('http://p/v1?location=us-central1&project=other', '/v1', sa), '/v1/projects/other/locations/us-central1')
    assert.equal(vertexModelsPrefix('http://p/v1/projects/x/locations/global', '/v1/projects/x/locations/global', sa), '/v1/projects/x/locations/global')
    assert.equal(vertexModelsPrefix('https://aiplatform.googleapis.com/v1', '/v1', parseVertexKey('AQ.k')), '/v1')

    const express = channel('https://aiplatform.googleapis.com/v1', 'AQ.k')
    const gemini = vertexAdapter.request(express, { operation: 'generate', dialect: 'gemini', model: 'gemini-2.5-pro', stream: true, body: '{}', clientHeaders: {} })
    assert.equal(gemini.path, '/v1/publishers/google/models/gemini-2.5-pro:streamGenerateContent?alt=sse')
    assert.equal(gemini.headers['x-goog-api-key'], 'AQ.k')
    assert.isUndefined(gemini.prepare)

    const claude = vertexAdapter.request(channel('https://us-east5-aiplatform.googleapis.com/v1?project=p', 'ya29.tok'), {
      operation: 'generate', dialect: 'anthropic_messages', model: 'claude-opus-4-1@20250805', stream: false,
      body: JSON.stringify({ model: 'claude-opus-4-1@20250805', max_tokens: 10, messages: [] }), clientHeaders: {},
    })
    assert.equal(claude.path, '/v1/projects/p/locations/us-east5/publishers/anthropic/models/claude-opus-4-1@20250805:rawPredict')
    assert.deepEqual(JSON.parse(String(claude.body)), { anthropic_version: 'vertex-2023-10-16', max_tokens: 10, messages: [] })
    assert.equal(claude.headers.authorization, 'Bearer ya29.tok')
  })

  test("a channel's dialect follows the upstream model: Gemini's, or Anthropic's for claude-*", ({ assert }) => {
    const vertex = channel('https://aiplatform.googleapis.com/v1', 'AQ.k')
    assert.equal(upstreamDialect(vertex, 'openai_chat', 'gemini-2.5-flash'), 'gemini')
    assert.equal(upstreamDialect(vertex, 'openai_chat', 'claude-sonnet-4-5@20250929'), 'anthropic_messages')
    assert.equal(upstreamDialect(vertex, 'anthropic_messages', 'gemini-2.5-flash'), 'gemini')
    assert.isFalse(vertexAdapter.countsTokens(vertex, 'claude-sonnet-4-5@20250929'))
    assert.isTrue(vertexAdapter.countsTokens(vertex, 'gemini-2.5-flash'))
  })

  test('the JWT: RS256 over header.claims, verifiable with the public key, the claims Google checks', ({ assert }) => {
    const sa = parseVertexKey(KEY)
    const account = (sa as { account: ServiceAccount }).account
    const jwt = signedAssertion(account, 1_800_000_000)
    const [header, claims, signature] = jwt.split('.')
    assert.isTrue(createVerify('RSA-SHA256').update(`${header}.${claims}`).verify(pair.publicKey, signature, 'base64url'))
    assert.deepEqual(JSON.parse(Buffer.from(header, 'base64url').toString()), { alg: 'RS256', typ: 'JWT', kid: 'abcdef0123456789abcdef' })
    assert.deepEqual(JSON.parse(Buffer.from(claims, 'base64url').toString()), {
      iss: 'sa@proj-1.iam.gserviceaccount.com', scope: SCOPE, aud: 'https://oauth2.googleapis.com/token', iat: 1_800_000_000, exp: 1_800_003_600,
    })
    // A rotated private key is another cache entry
    assert.notEqual(accountKey(account), accountKey({ ...account, privateKey: PEM.replace('A', 'B') }))
  })

  test("the service account's private key and key id are concealed in upstream words", ({ assert }) => {
    const text = withoutChannelSecrets(`echo ${PEM} id abcdef0123456789abcdef`, channel('https://aiplatform.googleapis.com/v1', KEY))
    assert.notInclude(text, 'PRIVATE KEY')
    assert.notInclude(text, 'abcdef0123456789abcdef')
  })

  test("a token's expires_in: kept 5 minutes short of it, half a short one's life, an hour at most, not at all when it says it has expired", ({ assert }) => {
    assert.equal(freshForMs(3599), 3299_000)
    assert.equal(freshForMs(60), 30_000)
    assert.equal(freshForMs(302), 151_000)
    // A broken endpoint's 1e12 s is not a token kept for ever (a revoked one would be used until a restart)
    assert.equal(freshForMs(1e12), 3300_000)
    assert.equal(freshForMs(Number.POSITIVE_INFINITY), 3300_000)
    for (const expired of [0, -5, Number.NaN]) assert.equal(freshForMs(expired), 0)
  })
})
