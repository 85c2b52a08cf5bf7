import { test } from '@japa/runner'
import { containerCredentialsUrl, parseIni, stsEndpoint } from '#gateway/providers/bedrock/aws_credentials'
import { RefreshingCredential } from '#gateway/providers/refreshing_credential'
import { ADC_PROJECT, parseVertexKey, vertexModelsPrefix } from '#gateway/providers/vertex/vertex_settings'
import { CredentialsRefused } from '#gateway/providers/provider_adapter'

test.group('Cloud credentials', () => {
  test('AWS shared files: sections, profiles of the config file, comments, nested sub-properties skipped', ({ assert }) => {
    const parsed = parseIni(['# comment', '[default]', 'aws_access_key_id = AKIA1', '; another', 'AWS_Secret_Access_Key=s/e=cret', '[profile  ops ]', 's3 =', '  max_concurrent_requests = 20', 'region=eu-west-1'].join('\r\n'))
    assert.deepEqual({ ...parsed.default }, { aws_access_key_id: 'AKIA1', aws_secret_access_key: 's/e=cret' })
    assert.deepEqual({ ...parsed['profile ops'] }, { s3: '', region: 'eu-west-1' })
    assert.isUndefined(parseIni('key = before any section')['key'])
  })

  test("STS's endpoint and the container endpoint from the environment, as the SDK reads them", ({ assert }) => {
    assert.equal(stsEndpoint({}), 'https://sts.amazonaws.com')
    assert.equal(stsEndpoint({ AWS_REGION: 'eu-west-1' }), 'https://sts.eu-west-1.amazonaws.com')
    assert.equal(stsEndpoint({ AWS_DEFAULT_REGION: 'cn-north-1' }), 'https://sts.cn-north-1.amazonaws.com.cn')
    assert.equal(stsEndpoint({ AWS_REGION: 'eu-west-1', AWS_ENDPOINT_URL: 'http://localhost:4566/' }), 'http://localhost:4566')
    assert.equal(stsEndpoint({ AWS_ENDPOINT_URL: 'http://a', AWS_ENDPOINT_URL_STS: 'http://sts.local' }), 'http://sts.local')
    assert.isNull(containerCredentialsUrl({}))
    assert.equal(containerCredentialsUrl({ AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: '/v2/credentials/abc' }), 'http://169.254.170.2/v2/credentials/abc')
    // The relative URI wins, as in the SDK
    assert.equal(containerCredentialsUrl({ AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: '/v2/c', AWS_CONTAINER_CREDENTIALS_FULL_URI: 'http://169.254.170.23/v1/credentials' }), 'http://169.254.170.2/v2/c')
    assert.equal(containerCredentialsUrl({ AWS_CONTAINER_CREDENTIALS_FULL_URI: 'http://169.254.170.23/v1/credentials' }), 'http://169.254.170.23/v1/credentials')
  })

  test('a refreshing credential: one load for concurrent callers, fresh until the margin, a failed refresh served by a still-valid one, then the failure', async ({ assert }) => {
    let loads = 0
    let fail = false
    let lifetimeMs = 400_000
    const credential = new RefreshingCredential<string>(async () => {
      loads++
      await new Promise((resolve) => setTimeout(resolve, 10))
      if (fail) throw new CredentialsRefused('refused')
      return { value: `v${loads}`, expiresAt: Date.now() + lifetimeMs }
    }, 300_000)
    assert.isNull(credential.fresh())
    const all = await Promise.all([credential.get(), credential.get(), credential.get()])
    assert.deepEqual(all, ['v1', 'v1', 'v1'])
    assert.equal(loads, 1)
    assert.equal(credential.fresh(), 'v1')

    // A lifetime inside the margin: used for half of it, not loaded on every call
    credential.forget()
    lifetimeMs = 100
    assert.equal(await credential.get(), 'v2')
    assert.equal(credential.fresh(), 'v2')
    await new Promise((resolve) => setTimeout(resolve, 60))
    assert.isNull(credential.fresh())
    // Expired, and the refresh fails: the failure is the caller's
    fail = true
    await new Promise((resolve) => setTimeout(resolve, 50))
    await assert.rejects(() => credential.get(), 'refused')

    // Past its margin but not expired, the refresh fails: the held one serves (and the failure is told)
    let down = false
    let staleSaid = 0
    const stale = new RefreshingCredential<string>(async () => {
      if (down) throw new Error('down')
      return { value: 'held', expiresAt: Date.now() + 300_500 }
    }, 300_000, () => staleSaid++)
    await stale.get()
    await new Promise((resolve) => setTimeout(resolve, 550))
    assert.isNull(stale.fresh())
    down = true
    assert.equal(await stale.get(), 'held')
    assert.equal(staleSaid, 1)

    // No expiry: kept until forgotten
    const forever = new RefreshingCredential<string>(async () => ({ value: 'static', expiresAt: null }), 300_000)
    await forever.get()
    assert.equal(forever.fresh(), 'static')
    forever.forget()
    assert.isNull(forever.fresh())
  })

  test('a Vertex key of `adc`: the project from ?project=, else held for the credentials in the path', ({ assert }) => {
    const adc = parseVertexKey(' adc ')
    assert.deepEqual(adc, { kind: 'adc' })
    assert.equal(vertexModelsPrefix('http://p/v1?location=us-central1&project=named', '/v1', adc), '/v1/projects/named/locations/us-central1')
    assert.equal(vertexModelsPrefix('https://europe-west4-aiplatform.googleapis.com/v1', '/v1', adc), `/v1/projects/${ADC_PROJECT}/locations/europe-west4`)
    assert.equal(vertexModelsPrefix('http://p/v1/projects/x/locations/global', '/v1/projects/x/locations/global', adc), '/v1/projects/x/locations/global')
  })
})
