import { test } from '@japa/runner'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createServer, type AddressInfo } from 'node:net'
import db from '@adonisjs/lucid/services/db'
import ace from '@adonisjs/core/services/ace'
import ChannelTest from '#commands/channel_test'
import { testChannel } from '#actions/test_channel'
import { setPrice } from '#actions/set_price'
import { forgetAwsCredentials } from '#gateway/providers/bedrock/aws_credentials'
import { forgetAdc } from '#gateway/providers/vertex/google_adc'
import { forgetTokens } from '#gateway/providers/vertex/google_token'
import { MockBedrock } from '#tests/fixtures/mock_bedrock'
import { MockAwsCredentials } from '#tests/fixtures/mock_aws_credentials'
import { MockVertex, MOCK_PROJECT } from '#tests/fixtures/mock_vertex'
import { MockGceMetadata } from '#tests/fixtures/mock_gce_metadata'
import { anthropic, genai } from '#tests/clients'
import { gateway, openai, post, refreshCaches, resetDatabase, seedChannel, seedUser, usageRows } from '#tests/helpers'

const SONNET = 'anthropic.claude-3-5-haiku-20241022-v1:0'
const FLASH = 'gemini-2.5-flash'
const hi = [{ role: 'user' as const, content: 'hi' }]

/** The variables the two chains read: cleared around each test, restored after */
const CHAIN_VARS = [
  'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_CREDENTIAL_EXPIRATION', 'AWS_PROFILE',
  'AWS_SHARED_CREDENTIALS_FILE', 'AWS_CONFIG_FILE', 'AWS_WEB_IDENTITY_TOKEN_FILE', 'AWS_ROLE_ARN', 'AWS_ROLE_SESSION_NAME',
  'AWS_ENDPOINT_URL_STS', 'AWS_ENDPOINT_URL', 'AWS_REGION', 'AWS_DEFAULT_REGION', 'AWS_CONTAINER_CREDENTIALS_RELATIVE_URI',
  'AWS_CONTAINER_CREDENTIALS_FULL_URI', 'AWS_CONTAINER_AUTHORIZATION_TOKEN', 'AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE',
  'AWS_EC2_METADATA_DISABLED', 'AWS_EC2_METADATA_SERVICE_ENDPOINT', 'AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE', 'AWS_METADATA_SERVICE_TIMEOUT',
  'GOOGLE_APPLICATION_CREDENTIALS', 'CLOUDSDK_CONFIG', 'GCE_METADATA_HOST', 'GCE_METADATA_IP', 'METADATA_SERVER_DETECTION',
  'GOOGLE_CLOUD_PROJECT', 'GCLOUD_PROJECT',
]

async function run(command: any, args: string[]) {
  const instance = await ace.create(command, args)
  ace.ui.switchMode('raw')
  await instance.exec()
  return instance
}

/** Sets the chains' variables for this test (the others cleared) and forgets what was found before. */
function useEnv(vars: Record<string, string>) {
  for (const name of CHAIN_VARS) delete process.env[name]
  Object.assign(process.env, vars)
  forgetAwsCredentials()
  forgetAdc()
  forgetTokens()
}

async function disabledRow(channelId: number) {
  let row = await db.from('channels').where('id', channelId).first()
  for (let i = 0; i < 50 && row.enabled; i++) {
    await new Promise((resolve) => setTimeout(resolve, 20))
    row = await db.from('channels').where('id', channelId).first()
  }
  return row
}

/** The errors of the attempts made on a channel (written behind the answer: waited for) */
async function attemptErrors(channelId: number): Promise<string[]> {
  for (let i = 0; i < 50; i++) {
    const rows = await db.from('request_attempts').where('channel_id', channelId).orderBy('id')
    if (rows.length) return rows.map((row) => String(row.error))
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  return []
}

/** A loopback port nothing listens on (fetch refuses port 9 itself: "bad port") */
async function closedPort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  await new Promise((resolve) => server.close(resolve))
  return port
}

function signedBy(authorization: unknown): string | null {
  return /Credential=([^/]+)\//.exec(String(authorization))?.[1] ?? null
}

/**
 * Bedrock channels keyed `env` against the mock Bedrock, which checks each
 * SigV4 signature with the secret of the credentials it was told of: the
 * static keys of the environment and the shared files, and the temporary
 * ones a mock STS, container endpoint and IMDS issue (mock_aws_credentials.ts).
 */
test.group('AWS default credential chain (bedrock key env)', (group) => {
  let bedrock: MockBedrock
  let aws: MockAwsCredentials
  let dir: string
  let saved: Record<string, string | undefined>
  let models = 0

  group.setup(async () => {
    await resetDatabase()
    saved = Object.fromEntries(CHAIN_VARS.map((name) => [name, process.env[name]]))
    dir = await mkdtemp(join(tmpdir(), 'cloudcreds-aws-'))
    bedrock = new MockBedrock({ region: 'us-east-1' })
    await bedrock.start()
    aws = new MockAwsCredentials((credentials) => bedrock.trust(credentials))
    await aws.start()
    bedrock.trust({ accessKeyId: 'AKIAENVIRONMENT', secretAccessKey: 'env/Secret+0' })
    bedrock.trust({ accessKeyId: 'AKIAPROFILEDEF', secretAccessKey: 'profile/default+1' })
    bedrock.trust({ accessKeyId: 'AKIAPROFILEOPS', secretAccessKey: 'profile/ops+2', sessionToken: 'ops-session-token' })
    await writeFile(join(dir, 'credentials'), [
      '# written by aws configure',
      '[default]',
      'aws_access_key_id = AKIAPROFILEDEF',
      'aws_secret_access_key = profile/default+1',
      '',
      '[assumer]',
      'role_arn = arn:aws:iam::123456789012:role/other',
      'source_profile = default',
    ].join('\n'))
    await writeFile(join(dir, 'config'), [
      '[default]',
      'region = us-east-1',
      '[profile ops]',
      'aws_access_key_id=AKIAPROFILEOPS',
      'aws_secret_access_key=profile/ops+2',
      'aws_session_token=ops-session-token',
      '[profile sso]',
      'sso_session = corp',
      'sso_account_id = 123456789012',
    ].join('\n'))
    await writeFile(join(dir, 'web-identity-token'), `${aws.webIdentityToken}\n`)
    await writeFile(join(dir, 'wrong-web-identity-token'), 'eyJ.not-the-token.sig')
    await writeFile(join(dir, 'container-token'), aws.containerToken)
    return async () => {
      for (const [name, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[name]
        else process.env[name] = value
      }
      forgetAwsCredentials()
      await bedrock.stop()
      await aws.stop()
      await rm(dir, { recursive: true, force: true })
    }
  })

  /** A bedrock channel keyed env and the public model that reaches it alone */
  async function envChannel(options: { firstByteTimeoutMs?: number; priority?: number; model?: string } = {}) {
    const model = options.model ?? `claude-env-${++models}`
    const channel = await seedChannel({
      name: `bedrock-env-${models}-${options.priority ?? 0}`,
      provider: 'bedrock',
      baseUrl: `${bedrock.origin}?region=us-east-1`,
      apiKey: 'env',
      models: [],
      modelMapping: { [model]: SONNET },
      ...(options.priority !== undefined ? { priority: options.priority } : {}),
      ...(options.firstByteTimeoutMs ? { firstByteTimeoutMs: options.firstByteTimeoutMs } : {}),
    })
    return { channel, model }
  }

  /** Files and endpoints that are not there: the chain's later steps find nothing unless a test says so */
  function base(dirOverride = dir): Record<string, string> {
    return {
      AWS_SHARED_CREDENTIALS_FILE: join(dirOverride, 'absent-credentials'),
      AWS_CONFIG_FILE: join(dirOverride, 'absent-config'),
      AWS_EC2_METADATA_DISABLED: 'true',
    }
  }

  test('the environment first; AWS_PROFILE skips it for the shared files, whose credentials file and config file profiles are read', async ({ assert }) => {
    const { model } = await envChannel()
    const user = await seedUser()
    const client = anthropic(user.key)
    const files = { AWS_SHARED_CREDENTIALS_FILE: join(dir, 'credentials'), AWS_CONFIG_FILE: join(dir, 'config'), AWS_EC2_METADATA_DISABLED: 'true' }

    useEnv({ ...files, AWS_ACCESS_KEY_ID: 'AKIAENVIRONMENT', AWS_SECRET_ACCESS_KEY: 'env/Secret+0' })
    const answer = await client.messages.create({ model, max_tokens: 16, messages: hi })
    assert.equal(answer.content[0].type === 'text' && answer.content[0].text, 'Hello from Bedrock.')
    assert.isTrue(bedrock.lastRequest().signed)
    assert.equal(signedBy(bedrock.lastRequest().headers.authorization), 'AKIAENVIRONMENT')
    assert.notProperty(bedrock.lastRequest().headers, 'x-amz-security-token')

    // No environment keys: the default profile of the credentials file
    useEnv(files)
    await client.messages.create({ model, max_tokens: 16, messages: hi })
    assert.equal(signedBy(bedrock.lastRequest().headers.authorization), 'AKIAPROFILEDEF')

    // AWS_PROFILE set: the environment's keys are passed over for the profile (the SDK's rule), here one of the config file
    useEnv({ ...files, AWS_PROFILE: 'ops', AWS_ACCESS_KEY_ID: 'AKIAENVIRONMENT', AWS_SECRET_ACCESS_KEY: 'env/Secret+0' })
    await client.messages.create({ model, max_tokens: 16, messages: hi })
    assert.equal(signedBy(bedrock.lastRequest().headers.authorization), 'AKIAPROFILEOPS')
    assert.equal(bedrock.lastRequest().headers['x-amz-security-token'], 'ops-session-token')
    assert.isTrue(bedrock.lastRequest().signed)

    // Nothing asked of STS, a container endpoint or IMDS
    assert.lengthOf(aws.calls, 0)
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 3)
    for (const row of rows) assert.include(row, { status: 200, provider: 'bedrock', prompt_tokens: 12, completion_tokens: 4 })
  })

  test('a profile that assumes a role or signs in with SSO: refused with that said (panel Test and a request), the channel out of rotation', async ({ assert }) => {
    useEnv({ AWS_SHARED_CREDENTIALS_FILE: join(dir, 'credentials'), AWS_CONFIG_FILE: join(dir, 'config'), AWS_PROFILE: 'assumer', AWS_EC2_METADATA_DISABLED: 'true' })
    const first = await envChannel()
    const result = await testChannel(first.channel.id)
    assert.isFalse(result.ok)
    assert.include(result.error, 'AWS credentials (profile assumer): the profile uses role_arn, source_profile, which the gateway does not read')
    assert.notInclude(String(result.error), 'at ')
    assert.include((await disabledRow(first.channel.id)).disabled_reason, 'role_arn')

    useEnv({ AWS_SHARED_CREDENTIALS_FILE: join(dir, 'credentials'), AWS_CONFIG_FILE: join(dir, 'config'), AWS_PROFILE: 'sso', AWS_EC2_METADATA_DISABLED: 'true' })
    const second = await envChannel()
    const user = await seedUser({ balance: '1' })
    const answer = await post('/v1/messages', { model: second.model, max_tokens: 16, messages: hi }, { 'x-api-key': user.key, 'anthropic-version': '2023-06-01' })
    assert.equal(answer.status, 502)
    const error: any = await answer.json()
    assert.equal(error.type, 'error')
    assert.include(error.error.message, "rejected the channel's credentials (HTTP 401)")
    assert.include((await disabledRow(second.channel.id)).disabled_reason, 'the profile uses sso_session')
  })

  test('web identity (EKS IRSA): one STS exchange for concurrent requests, the token file sent, temporary credentials signed with their session token; fetched again near expiry', async ({ assert }) => {
    useEnv({
      ...base(),
      AWS_WEB_IDENTITY_TOKEN_FILE: join(dir, 'web-identity-token'),
      AWS_ROLE_ARN: aws.roleArn,
      AWS_ROLE_SESSION_NAME: 'gateway-pod',
      AWS_ENDPOINT_URL_STS: aws.origin,
    })
    const { model } = await envChannel()
    const user = await seedUser()
    const client = anthropic(user.key)
    const before = aws.callsTo('/').length
    // Temporary credentials of 302 s: fresh for the gateway 2 s (its margin is 300 s)
    aws.lifetimeS = 302
    try {
      const answers = await Promise.all(Array.from({ length: 5 }, () => client.messages.create({ model, max_tokens: 16, messages: hi })))
      for (const answer of answers) assert.equal(answer.content[0].type === 'text' && answer.content[0].text, 'Hello from Bedrock.')
      const sts = aws.callsTo('/')
      assert.lengthOf(sts, before + 1, 'one AssumeRoleWithWebIdentity for five requests')
      const form = new URLSearchParams(sts[sts.length - 1].body)
      assert.equal(form.get('Action'), 'AssumeRoleWithWebIdentity')
      assert.equal(form.get('WebIdentityToken'), aws.webIdentityToken)
      assert.equal(form.get('RoleArn'), aws.roleArn)
      assert.equal(form.get('RoleSessionName'), 'gateway-pod')
      const issued = aws.issued[aws.issued.length - 1]
      assert.isTrue(bedrock.lastRequest().signed)
      assert.equal(signedBy(bedrock.lastRequest().headers.authorization), issued.accessKeyId)
      assert.equal(bedrock.lastRequest().headers['x-amz-security-token'], issued.sessionToken)

      // Still fresh: no exchange
      await client.messages.create({ model, max_tokens: 16, messages: hi })
      assert.lengthOf(aws.callsTo('/'), before + 1)
      // Within 5 minutes of their Expiration: new ones, fetched inside the request's attempt
      await new Promise((resolve) => setTimeout(resolve, 2100))
      await client.messages.create({ model, max_tokens: 16, messages: hi })
      assert.lengthOf(aws.callsTo('/'), before + 2)
      const renewed = aws.issued[aws.issued.length - 1]
      assert.notEqual(renewed.accessKeyId, issued.accessKeyId)
      assert.equal(signedBy(bedrock.lastRequest().headers.authorization), renewed.accessKeyId)

      // channel:test lists the models with them too (its own process path: upstream_model_list's prepare)
      const command = await run(ChannelTest, [String((await db.from('channels').where('name', `bedrock-env-${models}-0`).first()).id)])
      command.assertSucceeded()
      assert.equal(bedrock.lastRequest().path, '/foundation-models')
      assert.isTrue(bedrock.lastRequest().signed)
    } finally {
      aws.lifetimeS = 3600
    }
  }).timeout(20_000)

  test('a refresh that fails: the credentials held serve while they are valid; once expired the attempt fails with the reason, the channel stays in rotation', async ({ assert }) => {
    useEnv({ ...base(), AWS_WEB_IDENTITY_TOKEN_FILE: join(dir, 'web-identity-token'), AWS_ROLE_ARN: aws.roleArn, AWS_ENDPOINT_URL: aws.origin })
    const { channel, model } = await envChannel()
    const user = await seedUser({ balance: '1' })
    const client = anthropic(user.key)
    aws.lifetimeS = 302
    try {
      await client.messages.create({ model, max_tokens: 16, messages: hi })
      const held = aws.issued[aws.issued.length - 1]
      await new Promise((resolve) => setTimeout(resolve, 2100))
      // STS down: the held credentials (valid ~5 more minutes) still sign
      aws.failNext = 1
      const calls = aws.calls.length
      const answer = await client.messages.create({ model, max_tokens: 16, messages: hi })
      assert.equal(answer.content[0].type === 'text' && answer.content[0].text, 'Hello from Bedrock.')
      assert.equal(aws.calls.length, calls + 1, 'a refresh was tried')
      assert.equal(signedBy(bedrock.lastRequest().headers.authorization), held.accessKeyId)

      // Credentials of 4 s: fresh 2 s, then expired with STS down: the request fails, said so, nothing charged
      aws.lifetimeS = 4
      useEnv({ ...base(), AWS_WEB_IDENTITY_TOKEN_FILE: join(dir, 'web-identity-token'), AWS_ROLE_ARN: aws.roleArn, AWS_ENDPOINT_URL: aws.origin })
      await client.messages.create({ model, max_tokens: 16, messages: hi })
      await new Promise((resolve) => setTimeout(resolve, 4100))
      aws.failNext = 10
      const failed = await post('/v1/chat/completions', { model, messages: hi }, { authorization: `Bearer ${user.key}` })
      assert.equal(failed.status, 502)
      const error: any = await failed.json()
      // The client is told of a failure, not where (client_message.ts); the attempt's record says it all
      assert.equal(error.error.message, 'Upstream request failed: AWS credentials')
      assert.include((await attemptErrors(channel.id)).join('\n'), 'AWS credentials (web identity): STS AssumeRoleWithWebIdentity answered HTTP 500')
      assert.isTrue((await gateway()).catalog.channels.find((c) => c.id === channel.id)!.enabled, 'an STS outage is no bad key')
    } finally {
      aws.failNext = 0
      aws.lifetimeS = 3600
    }
  }).timeout(20_000)

  test('STS refusing the web identity token: the channel out of rotation with STS words, the client told, nothing charged', async ({ assert }) => {
    useEnv({ ...base(), AWS_WEB_IDENTITY_TOKEN_FILE: join(dir, 'wrong-web-identity-token'), AWS_ROLE_ARN: aws.roleArn, AWS_ENDPOINT_URL_STS: aws.origin })
    const { channel, model } = await envChannel()
    const user = await seedUser({ balance: '1' })
    const sent = bedrock.requests.length
    const answer = await post('/v1/chat/completions', { model, messages: hi }, { authorization: `Bearer ${user.key}` })
    assert.equal(answer.status, 502)
    const error: any = await answer.json()
    assert.include(error.error.message, "rejected the channel's credentials (HTTP 401)")
    assert.equal(bedrock.requests.length, sent, 'Bedrock not called')
    const row = await disabledRow(channel.id)
    assert.isFalse(row.enabled)
    assert.include(row.disabled_reason, 'STS AssumeRoleWithWebIdentity answered HTTP 400 (InvalidIdentityToken: The web identity token that was passed could not be validated')
    assert.notInclude(row.disabled_reason, 'not-the-token')

    // A token file that is not there: said so in the panel's Test
    useEnv({ ...base(), AWS_WEB_IDENTITY_TOKEN_FILE: join(dir, 'no-such-token'), AWS_ROLE_ARN: aws.roleArn, AWS_ENDPOINT_URL_STS: aws.origin })
    const other = await envChannel()
    const result = await testChannel(other.channel.id)
    assert.isFalse(result.ok)
    assert.include(result.error, `AWS credentials (web identity): cannot read AWS_WEB_IDENTITY_TOKEN_FILE ${join(dir, 'no-such-token')} (ENOENT)`)
  })

  test('the SDK order: shared files before web identity, web identity before a container endpoint, a container endpoint before IMDS', async ({ assert }) => {
    const user = await seedUser()
    const client = anthropic(user.key)
    const { model } = await envChannel()
    const everything = {
      AWS_SHARED_CREDENTIALS_FILE: join(dir, 'credentials'),
      AWS_CONFIG_FILE: join(dir, 'config'),
      AWS_WEB_IDENTITY_TOKEN_FILE: join(dir, 'web-identity-token'),
      AWS_ROLE_ARN: aws.roleArn,
      AWS_ENDPOINT_URL_STS: aws.origin,
      AWS_CONTAINER_CREDENTIALS_FULL_URI: `${aws.origin}/container-credentials`,
      AWS_CONTAINER_AUTHORIZATION_TOKEN: aws.containerToken,
      AWS_EC2_METADATA_SERVICE_ENDPOINT: aws.origin,
    }
    const { AWS_SHARED_CREDENTIALS_FILE: _c, AWS_CONFIG_FILE: _f, ...withoutFiles } = everything
    const { AWS_WEB_IDENTITY_TOKEN_FILE: _w, AWS_ROLE_ARN: _r, ...withoutWebIdentity } = withoutFiles
    const { AWS_CONTAINER_CREDENTIALS_FULL_URI: _u, ...imdsOnly } = withoutWebIdentity
    const absent = { AWS_SHARED_CREDENTIALS_FILE: join(dir, 'absent'), AWS_CONFIG_FILE: join(dir, 'absent') }
    const cases: Array<[Record<string, string>, RegExp]> = [
      [everything, /^AKIAPROFILEDEF$/],
      [{ ...withoutFiles, ...absent }, /^ASIASTS\d+$/],
      [{ ...withoutWebIdentity, ...absent }, /^ASIAECS\d+$/],
      [{ ...imdsOnly, ...absent }, /^ASIAIMD\d+$/],
    ]
    for (const [vars, expected] of cases) {
      useEnv(vars)
      await client.messages.create({ model, max_tokens: 16, messages: hi })
      assert.match(String(signedBy(bedrock.lastRequest().headers.authorization)), expected)
      assert.isTrue(bedrock.lastRequest().signed)
    }
  })

  test('container credentials (ECS, EKS Pod Identity): the authorization token file read; a wrong token and a non-local http endpoint refused with that said', async ({ assert }) => {
    useEnv({ ...base(), AWS_CONTAINER_CREDENTIALS_FULL_URI: `${aws.origin}/container-credentials`, AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: join(dir, 'container-token'), AWS_CONTAINER_AUTHORIZATION_TOKEN: 'stale-token' })
    const { channel, model } = await envChannel()
    const user = await seedUser()
    const answer = await openai(user.key).chat.completions.create({ model, messages: hi })
    assert.equal(answer.choices[0].message.content, 'Hello from Bedrock.')
    const call = aws.callsTo('/container-credentials').pop()!
    assert.equal(call.headers.authorization, aws.containerToken, 'the file wins over the variable')
    assert.match(String(signedBy(bedrock.lastRequest().headers.authorization)), /^ASIAECS\d+$/)
    assert.isTrue((await testChannel(channel.id)).ok)

    useEnv({ ...base(), AWS_CONTAINER_CREDENTIALS_FULL_URI: `${aws.origin}/container-credentials`, AWS_CONTAINER_AUTHORIZATION_TOKEN: 'wrong' })
    const wrong = await envChannel()
    let result = await testChannel(wrong.channel.id)
    assert.include(result.error, `AWS credentials (container): the container endpoint answered HTTP 401 (AccessDenied: Unable to validate the authorization token)`)

    useEnv({ ...base(), AWS_CONTAINER_CREDENTIALS_FULL_URI: 'http://10.1.2.3/creds' })
    const remote = await envChannel()
    result = await testChannel(remote.channel.id)
    assert.include(result.error, 'http://10.1.2.3 is not a container credentials endpoint')
  })

  test('EC2 instance metadata, IMDSv2: the session token PUT first and sent with each read; no role, disabled, or nothing answering said so', async ({ assert }) => {
    useEnv({ AWS_SHARED_CREDENTIALS_FILE: join(dir, 'absent'), AWS_CONFIG_FILE: join(dir, 'absent'), AWS_EC2_METADATA_SERVICE_ENDPOINT: aws.origin })
    const { model } = await envChannel()
    const user = await seedUser({ balance: '1' })
    const from = aws.calls.length
    const answer = await anthropic(user.key).messages.create({ model, max_tokens: 16, messages: hi })
    assert.equal(answer.content[0].type === 'text' && answer.content[0].text, 'Hello from Bedrock.')
    const calls = aws.calls.slice(from)
    assert.deepEqual(calls.map((c) => `${c.method} ${c.path}`), [
      'PUT /latest/api/token',
      'GET /latest/meta-data/iam/security-credentials/',
      `GET /latest/meta-data/iam/security-credentials/${aws.roleName}`,
    ])
    assert.equal(calls[0].headers['x-aws-ec2-metadata-token-ttl-seconds'], '21600')
    assert.isString(calls[1].headers['x-aws-ec2-metadata-token'])
    assert.equal(calls[2].headers['x-aws-ec2-metadata-token'], calls[1].headers['x-aws-ec2-metadata-token'])
    assert.match(String(signedBy(bedrock.lastRequest().headers.authorization)), /^ASIAIMD\d+$/)

    // An instance without a role: a refusal that says it
    aws.noRole = true
    try {
      useEnv({ AWS_SHARED_CREDENTIALS_FILE: join(dir, 'absent'), AWS_CONFIG_FILE: join(dir, 'absent'), AWS_EC2_METADATA_SERVICE_ENDPOINT: aws.origin })
      const roleless = await envChannel()
      const result = await testChannel(roleless.channel.id)
      assert.include(result.error, 'AWS credentials (instance metadata): the EC2 instance has no IAM role (instance profile) attached')
    } finally {
      aws.noRole = false
    }

    // Disabled and nothing else: every place the chain looked, named
    useEnv(base())
    const none = await envChannel()
    let result = await testChannel(none.channel.id)
    assert.include(result.error, 'AWS credentials: none found (no AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, no profile default in the shared files')
    assert.include(result.error, 'disabled by AWS_EC2_METADATA_DISABLED')

    // Not on EC2 (nothing listens): this attempt fails, said so, and the channel stays in rotation
    const closed = await closedPort()
    useEnv({ AWS_SHARED_CREDENTIALS_FILE: join(dir, 'absent'), AWS_CONFIG_FILE: join(dir, 'absent'), AWS_EC2_METADATA_SERVICE_ENDPOINT: `http://127.0.0.1:${closed}` })
    const offEc2 = await envChannel()
    const failed = await post('/v1/chat/completions', { model: offEc2.model, messages: hi }, { authorization: `Bearer ${user.key}` })
    assert.equal(failed.status, 502)
    const error: any = await failed.json()
    assert.equal(error.error.message, 'Upstream request failed: AWS credentials')
    const said = (await attemptErrors(offEc2.channel.id)).join('\n')
    assert.include(said, `AWS credentials (instance metadata): none found (none in the environment or the shared files, no web identity, no container endpoint), and the EC2 instance metadata service at http://127.0.0.1:${closed} could not be reached (ECONNREFUSED)`)
    assert.isTrue((await gateway()).catalog.channels.find((c) => c.id === offEc2.channel.id)!.enabled)
  })

  test('rotated without a restart: static keys (environment, a re-written credentials file) read again once AWS refuses them; temporary ones due for refresh walk the chain again', async ({ assert }) => {
    const { channel, model } = await envChannel()
    const user = await seedUser({ balance: '1' })
    const ask = () => post('/v1/chat/completions', { model, messages: hi }, { authorization: `Bearer ${user.key}` })
    bedrock.trust({ accessKeyId: 'AKIAENVOLD', secretAccessKey: 'env/old+0' })
    bedrock.trust({ accessKeyId: 'AKIAENVNEW', secretAccessKey: 'env/new+0' })
    useEnv({ ...base(), AWS_ACCESS_KEY_ID: 'AKIAENVOLD', AWS_SECRET_ACCESS_KEY: 'env/old+0' })
    assert.equal((await ask()).status, 200)
    assert.equal(signedBy(bedrock.lastRequest().headers.authorization), 'AKIAENVOLD')
    // The variables rotated (as a secrets manager does) and the old key deactivated: the held key is refused once, as
    // a passing failure (the channel stays), and the next request reads the environment again
    process.env.AWS_ACCESS_KEY_ID = 'AKIAENVNEW'
    process.env.AWS_SECRET_ACCESS_KEY = 'env/new+0'
    bedrock.distrust('AKIAENVOLD')
    const refused = await ask()
    assert.isAtLeast(refused.status, 500)
    await refused.text()
    assert.isTrue((await gateway()).catalog.channels.find((c) => c.id === channel.id)!.enabled)
    assert.equal((await ask()).status, 200)
    assert.equal(signedBy(bedrock.lastRequest().headers.authorization), 'AKIAENVNEW')

    // A shared credentials file re-written with a new key: the same
    const file = join(dir, 'rotated-credentials')
    bedrock.trust({ accessKeyId: 'AKIAFILEOLD', secretAccessKey: 'file/old+1' })
    bedrock.trust({ accessKeyId: 'AKIAFILENEW', secretAccessKey: 'file/new+1' })
    await writeFile(file, '[default]\naws_access_key_id = AKIAFILEOLD\naws_secret_access_key = file/old+1\n')
    useEnv({ ...base(), AWS_SHARED_CREDENTIALS_FILE: file })
    assert.equal((await ask()).status, 200)
    assert.equal(signedBy(bedrock.lastRequest().headers.authorization), 'AKIAFILEOLD')
    await writeFile(file, '[default]\naws_access_key_id = AKIAFILENEW\naws_secret_access_key = file/new+1\n')
    bedrock.distrust('AKIAFILEOLD')
    await (await ask()).text()
    assert.equal((await ask()).status, 200)
    assert.equal(signedBy(bedrock.lastRequest().headers.authorization), 'AKIAFILENEW')

    // Temporary keys (a container endpoint's) due for refresh: the chain is walked again, and the keys the
    // environment holds now (first in the chain) sign, with no failed request
    useEnv({ ...base(), AWS_CONTAINER_CREDENTIALS_FULL_URI: `${aws.origin}/container-credentials`, AWS_CONTAINER_AUTHORIZATION_TOKEN: aws.containerToken })
    aws.lifetimeS = 2
    try {
      assert.equal((await ask()).status, 200)
      assert.notInclude(['AKIAENVNEW', 'AKIAFILENEW'], String(signedBy(bedrock.lastRequest().headers.authorization)))
      process.env.AWS_ACCESS_KEY_ID = 'AKIAENVNEW'
      process.env.AWS_SECRET_ACCESS_KEY = 'env/new+0'
      await new Promise((resolve) => setTimeout(resolve, 1100))
      assert.equal((await ask()).status, 200)
      assert.equal(signedBy(bedrock.lastRequest().headers.authorization), 'AKIAENVNEW')
    } finally {
      aws.lifetimeS = 3600
    }
  }).timeout(15_000)

  test('credentials held past their real end (a source stating an absurd Expiration): AWS refusing them is no bad key; the chain is asked again, the channel stays', async ({ assert }) => {
    useEnv({ ...base(), AWS_CONTAINER_CREDENTIALS_FULL_URI: `${aws.origin}/container-credentials`, AWS_CONTAINER_AUTHORIZATION_TOKEN: aws.containerToken })
    const { channel, model } = await envChannel()
    const user = await seedUser({ balance: '1' })
    aws.lifetimeS = 1
    aws.statedExpiration = '9999-12-31T23:59:59Z'
    try {
      const first = await post('/v1/chat/completions', { model, messages: hi }, { authorization: `Bearer ${user.key}` })
      assert.equal(first.status, 200)
      await first.text()
      const held = signedBy(bedrock.lastRequest().headers.authorization)
      await new Promise((resolve) => setTimeout(resolve, 1100))
      // Signed with the held keys, which AWS says expired: this attempt fails, the channel is not disabled
      const refused = await post('/v1/chat/completions', { model, messages: hi }, { authorization: `Bearer ${user.key}` })
      assert.isAtLeast(refused.status, 500)
      await refused.text()
      assert.isTrue((await gateway()).catalog.channels.find((c) => c.id === channel.id)!.enabled, 'expired held keys are no bad key')
      // The next request asks the chain again: new keys sign
      aws.lifetimeS = 3600
      const again = await post('/v1/chat/completions', { model, messages: hi }, { authorization: `Bearer ${user.key}` })
      assert.equal(again.status, 200)
      await again.text()
      assert.notEqual(signedBy(bedrock.lastRequest().headers.authorization), held)
    } finally {
      aws.lifetimeS = 3600
      aws.statedExpiration = null
    }
  }).timeout(15_000)

  test("an STS slower than the channel's first-byte limit: that attempt times out, the next channel serves", async ({ assert }) => {
    useEnv({ ...base(), AWS_WEB_IDENTITY_TOKEN_FILE: join(dir, 'web-identity-token'), AWS_ROLE_ARN: aws.roleArn, AWS_ENDPOINT_URL_STS: aws.origin })
    const slow = await envChannel({ model: 'claude-env-slow', priority: 10, firstByteTimeoutMs: 1000 })
    const fallback = await seedChannel({
      name: 'bedrock-static-fallback',
      provider: 'bedrock',
      baseUrl: `${bedrock.origin}?region=us-east-1`,
      apiKey: 'AKIAENVIRONMENT:env/Secret+0',
      models: [],
      modelMapping: { 'claude-env-slow': SONNET },
      priority: 1,
    })
    const user = await seedUser({ balance: '1' })
    aws.delayMs = 2500
    try {
      const started = Date.now()
      const answer = await openai(user.key).chat.completions.create({ model: 'claude-env-slow', messages: hi })
      assert.equal(answer.choices[0].message.content, 'Hello from Bedrock.')
      assert.isBelow(Date.now() - started, 2400, 'the slow exchange was not waited for')
      const rows = await usageRows(user.userId)
      assert.equal(rows[0].channel_id, fallback.id)
      assert.isTrue((await gateway()).catalog.channels.find((c) => c.id === slow.channel.id)!.enabled)
    } finally {
      await new Promise((resolve) => setTimeout(resolve, 1600))
      aws.delayMs = 0
    }
  }).timeout(15_000)
})

/**
 * Vertex channels keyed `adc` against the mock Vertex (whose token endpoint
 * checks the JWT and refresh-token grants and whose model endpoints check
 * the tokens it issued) and a mock GCE metadata server handing out tokens
 * the mock Vertex issued.
 */
test.group('Google application default credentials (vertex key adc)', (group) => {
  let vertex: MockVertex
  let metadata: MockGceMetadata
  let dir: string
  let emptyGcloud: string
  let saved: Record<string, string | undefined>
  let models = 0

  group.setup(async () => {
    await resetDatabase()
    saved = Object.fromEntries(CHAIN_VARS.map((name) => [name, process.env[name]]))
    dir = await mkdtemp(join(tmpdir(), 'cloudcreds-gcp-'))
    emptyGcloud = join(dir, 'empty-gcloud')
    vertex = new MockVertex()
    await vertex.start()
    metadata = new MockGceMetadata('metadata-project', () => vertex.issueToken())
    await metadata.start()
    await writeFile(join(dir, 'service-account.json'), vertex.serviceAccount())
    await writeFile(join(dir, 'user.json'), vertex.authorizedUser({ quotaProject: 'quota-project' }))
    await writeFile(join(dir, 'user-no-project.json'), vertex.authorizedUser())
    await writeFile(join(dir, 'federated.json'), JSON.stringify({ type: 'external_account', audience: '//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/q', subject_token_type: 'urn:ietf:params:oauth:token-type:jwt', token_url: 'https://sts.googleapis.com/v1/token', credential_source: { file: '/var/run/token' } }))
    const { mkdir } = await import('node:fs/promises')
    await mkdir(join(dir, 'gcloud'))
    await writeFile(join(dir, 'gcloud', 'application_default_credentials.json'), vertex.authorizedUser({ quotaProject: 'gcloud-project' }))
    await setPrice({ model: FLASH, input: '0.3', output: '2.5' })
    await refreshCaches()
    return async () => {
      for (const [name, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[name]
        else process.env[name] = value
      }
      forgetAdc()
      forgetTokens()
      await vertex.stop()
      await metadata.stop()
      await rm(dir, { recursive: true, force: true })
    }
  })

  async function adcChannel(query = '') {
    const model = `gemini-adc-${++models}`
    const channel = await seedChannel({
      name: `vertex-adc-${models}`,
      provider: 'vertex',
      baseUrl: `${vertex.origin}/v1?location=us-central1${query}`,
      apiKey: 'adc',
      models: [model],
      modelMapping: { [model]: FLASH },
    })
    return { channel, model }
  }

  const path = (project: string) => `/v1/projects/${project}/locations/us-central1/publishers/google/models/${FLASH}:generateContent`

  test('GOOGLE_APPLICATION_CREDENTIALS naming a service account key: the JWT grant, the project from the key', async ({ assert }) => {
    useEnv({ GOOGLE_APPLICATION_CREDENTIALS: join(dir, 'service-account.json'), CLOUDSDK_CONFIG: emptyGcloud, GCE_METADATA_HOST: metadata.host })
    const { model } = await adcChannel()
    const user = await seedUser({ balance: '1' })
    const exchanges = vertex.exchanges
    const answers = await Promise.all(Array.from({ length: 4 }, () => openai(user.key).chat.completions.create({ model, messages: hi })))
    for (const answer of answers) assert.equal(answer.choices[0].message.content, 'Hello from Vertex.')
    assert.equal(vertex.exchanges, exchanges + 1, 'one JWT exchange for four requests')
    assert.equal(vertex.lastRequest().path, path(MOCK_PROJECT))
    assert.match(String(vertex.lastRequest().headers.authorization), /^Bearer ya29\.mock-\d+$/)
    assert.lengthOf(metadata.requests, 0, 'the metadata server is not asked')
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 4)
    for (const row of rows) assert.include(row, { status: 200, provider: 'vertex', prompt_tokens: 11, completion_tokens: 5 })
  })

  test("an authorized_user file (gcloud's login): the refresh-token grant once, its quota project as the project and x-goog-user-project; a new token near expiry", async ({ assert }) => {
    useEnv({ GOOGLE_APPLICATION_CREDENTIALS: join(dir, 'user.json'), CLOUDSDK_CONFIG: join(dir, 'gcloud'), GCE_METADATA_HOST: metadata.host })
    const { model } = await adcChannel()
    const user = await seedUser()
    const ai = genai(user.key)
    vertex.tokenLifetimeS = 302
    try {
      const refreshes = vertex.refreshes
      const answers = await Promise.all(Array.from({ length: 3 }, () => ai.models.generateContent({ model, contents: 'hi' })))
      for (const answer of answers) assert.equal(answer.text, 'Hello from Vertex.')
      assert.equal(vertex.refreshes, refreshes + 1)
      const seen = vertex.lastRequest()
      assert.equal(seen.path, path('quota-project'), 'GOOGLE_APPLICATION_CREDENTIALS wins over the gcloud file')
      assert.equal(seen.headers['x-goog-user-project'], 'quota-project')
      const first = seen.headers.authorization
      assert.match(String(first), /^Bearer ya29\.mock-user-\d+$/)
      await new Promise((resolve) => setTimeout(resolve, 2100))
      await ai.models.generateContent({ model, contents: 'hi' })
      assert.equal(vertex.refreshes, refreshes + 2)
      assert.notEqual(vertex.lastRequest().headers.authorization, first)
    } finally {
      vertex.tokenLifetimeS = 3600
    }

    // Without the variable: gcloud's well-known file; GOOGLE_CLOUD_PROJECT names the project over its quota project
    useEnv({ CLOUDSDK_CONFIG: join(dir, 'gcloud'), GCE_METADATA_HOST: metadata.host, GOOGLE_CLOUD_PROJECT: 'env-project' })
    await ai.models.generateContent({ model, contents: 'hi' })
    assert.equal(vertex.lastRequest().path, path('env-project'))
    assert.equal(vertex.lastRequest().headers['x-goog-user-project'], 'gcloud-project')
    assert.lengthOf(metadata.requests, 0)
  }).timeout(15_000)

  test("the metadata server (GCE, GKE): Metadata-Flavor sent, its token and project; the channel's ?project= wins; the panel Test and channel:test", async ({ assert }) => {
    useEnv({ CLOUDSDK_CONFIG: emptyGcloud, GCE_METADATA_HOST: metadata.host })
    const { channel, model } = await adcChannel()
    const user = await seedUser()
    const answer = await anthropic(user.key).messages.create({ model, max_tokens: 16, messages: hi })
    assert.equal(answer.content[0].type === 'text' && answer.content[0].text, 'Hello from Vertex.')
    assert.equal(vertex.lastRequest().path, path('metadata-project'))
    assert.match(String(vertex.lastRequest().headers.authorization), /^Bearer ya29\.mock-issued-/)
    assert.notProperty(vertex.lastRequest().headers, 'x-goog-user-project')
    for (const seen of metadata.requests) assert.equal(seen.headers['metadata-flavor'], 'Google')
    assert.equal(metadata.tokenCalls, 1)

    const named = await adcChannel('&project=named-project')
    await anthropic(user.key).messages.create({ model: named.model, max_tokens: 16, messages: hi })
    assert.equal(vertex.lastRequest().path, path('named-project'))
    assert.equal(metadata.tokenCalls, 1, 'the token held serves every adc channel')

    const result = await testChannel(channel.id)
    assert.isTrue(result.ok, String(result.error))
    const command = await run(ChannelTest, [String(channel.id)])
    command.assertSucceeded()
    assert.equal(vertex.lastRequest().path, '/v1beta1/publishers/google/models?pageSize=1000')
    assert.match(String(vertex.lastRequest().headers.authorization), /^Bearer ya29\.mock-issued-/)
  })

  test('a held token revoked before its expiry (the metadata server\'s): that attempt fails as a passing failure, the token is fetched again, the channel stays', async ({ assert }) => {
    useEnv({ CLOUDSDK_CONFIG: emptyGcloud, GCE_METADATA_HOST: metadata.host })
    const { channel, model } = await adcChannel()
    const user = await seedUser({ balance: '1' })
    const client = anthropic(user.key)
    await client.messages.create({ model, max_tokens: 16, messages: hi })
    const calls = metadata.tokenCalls
    vertex.revokeTokens()
    const refused = await post('/v1/messages', { model, max_tokens: 16, messages: hi }, { 'x-api-key': user.key, 'anthropic-version': '2023-06-01' })
    assert.isAtLeast(refused.status, 500)
    await refused.text()
    assert.isTrue((await gateway()).catalog.channels.find((c) => c.id === channel.id)!.enabled, 'a revoked token is no bad account')
    const answer = await client.messages.create({ model, max_tokens: 16, messages: hi })
    assert.equal(answer.content[0].type === 'text' && answer.content[0].text, 'Hello from Vertex.')
    assert.equal(metadata.tokenCalls, calls + 1)
  })

  test('rotated without a restart: a re-written file or a new GOOGLE_APPLICATION_CREDENTIALS serves from the next token due, or once Vertex refuses the held one', async ({ assert }) => {
    const file = join(dir, 'rotated-user.json')
    await writeFile(file, vertex.authorizedUser({ quotaProject: 'first-project' }))
    useEnv({ GOOGLE_APPLICATION_CREDENTIALS: file, CLOUDSDK_CONFIG: emptyGcloud, GCE_METADATA_HOST: metadata.host })
    const { channel, model } = await adcChannel()
    const user = await seedUser({ balance: '1' })
    const ask = () => post('/v1/chat/completions', { model, messages: hi }, { authorization: `Bearer ${user.key}` })
    vertex.tokenLifetimeS = 302
    try {
      assert.equal((await ask()).status, 200)
      assert.equal(vertex.lastRequest().path, path('first-project'))
      // Re-written (a new login): the token held still serves until it is due...
      await writeFile(file, vertex.authorizedUser({ quotaProject: 'second-project' }))
      assert.equal((await ask()).status, 200)
      assert.equal(vertex.lastRequest().path, path('first-project'))
      // ...then the file is read again, and its credentials serve
      await new Promise((resolve) => setTimeout(resolve, 2100))
      assert.equal((await ask()).status, 200)
      assert.equal(vertex.lastRequest().path, path('second-project'))
      assert.equal(vertex.lastRequest().headers['x-goog-user-project'], 'second-project')
      // The variable pointed at a service account key: the same at the next token due
      process.env.GOOGLE_APPLICATION_CREDENTIALS = join(dir, 'service-account.json')
      await new Promise((resolve) => setTimeout(resolve, 2100))
      assert.equal((await ask()).status, 200)
      assert.equal(vertex.lastRequest().path, path(MOCK_PROJECT))
      assert.match(String(vertex.lastRequest().headers.authorization), /^Bearer ya29\.mock-\d+$/)
    } finally {
      vertex.tokenLifetimeS = 3600
    }
    // The held token refused (revoked) after the variable changed again: one passing failure, then the new file's
    const refreshes = vertex.refreshes
    assert.equal((await ask()).status, 200)
    process.env.GOOGLE_APPLICATION_CREDENTIALS = join(dir, 'user.json')
    vertex.revokeTokens()
    const refused = await ask()
    assert.isAtLeast(refused.status, 500)
    await refused.text()
    assert.isTrue((await gateway()).catalog.channels.find((c) => c.id === channel.id)!.enabled)
    assert.equal((await ask()).status, 200)
    assert.equal(vertex.lastRequest().path, path('quota-project'))
    assert.equal(vertex.refreshes, refreshes + 1)
  }).timeout(15_000)

  test('failures said: a revoked refresh token (out of rotation), a federated file, no project, an instance without a service account, no metadata server (attempt fails, channel stays)', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    vertex.revokedRefreshToken = true
    try {
      useEnv({ GOOGLE_APPLICATION_CREDENTIALS: join(dir, 'user.json'), CLOUDSDK_CONFIG: emptyGcloud })
      const revoked = await adcChannel()
      const answer = await post('/v1/chat/completions', { model: revoked.model, messages: hi }, { authorization: `Bearer ${user.key}` })
      assert.equal(answer.status, 502)
      assert.include(((await answer.json()) as any).error.message, "rejected the channel's credentials (HTTP 401)")
      const row = await disabledRow(revoked.channel.id)
      assert.isFalse(row.enabled)
      assert.include(row.disabled_reason, `Google application default credentials (GOOGLE_APPLICATION_CREDENTIALS ${join(dir, 'user.json')}): the token endpoint answered HTTP 400 (invalid_grant: Token has been expired or revoked.)`)
    } finally {
      vertex.revokedRefreshToken = false
    }

    useEnv({ GOOGLE_APPLICATION_CREDENTIALS: join(dir, 'federated.json'), CLOUDSDK_CONFIG: emptyGcloud })
    const federated = await adcChannel()
    let result = await testChannel(federated.channel.id)
    assert.include(result.error, 'a credentials file of type external_account is not read by the gateway')

    useEnv({ GOOGLE_APPLICATION_CREDENTIALS: join(dir, 'user-no-project.json'), CLOUDSDK_CONFIG: emptyGcloud })
    const projectless = await adcChannel()
    result = await testChannel(projectless.channel.id)
    assert.include(result.error, "they name no project: give the channel's base URL ?project= (or set GOOGLE_CLOUD_PROJECT)")

    metadata.noServiceAccount = true
    try {
      useEnv({ CLOUDSDK_CONFIG: emptyGcloud, GCE_METADATA_HOST: metadata.host })
      const bare = await adcChannel()
      result = await testChannel(bare.channel.id)
      // (the mock's address is the channel's host here too: concealed as [upstream] like any of the channel's)
      assert.match(String(result.error), /^Google application default credentials \(the metadata server at http:\/\/\S+\): the instance has no service account attached$/)
    } finally {
      metadata.noServiceAccount = false
    }

    const closed = await closedPort()
    useEnv({ CLOUDSDK_CONFIG: emptyGcloud, GCE_METADATA_HOST: `127.0.0.1:${closed}` })
    const offGcp = await adcChannel()
    const failed = await post(`/v1beta/models/${offGcp.model}:generateContent`, { contents: [{ role: 'user', parts: [{ text: 'hi' }] }] }, { 'x-goog-api-key': user.key })
    assert.equal(failed.status, 502)
    const error: any = await failed.json()
    assert.equal(error.error.status, 'UNAVAILABLE')
    assert.notInclude(error.error.message, '127.0.0.1')
    const said = (await attemptErrors(offGcp.channel.id)).join('\n')
    assert.include(said, `Google application default credentials: none found (GOOGLE_APPLICATION_CREDENTIALS is not set, no ${join(emptyGcloud, 'application_default_credentials.json')}), and the metadata server at http://127.0.0.1:${closed} could not be reached (ECONNREFUSED)`)
    assert.isTrue((await gateway()).catalog.channels.find((c) => c.id === offGcp.channel.id)!.enabled)
  })
})
