import { test } from '@japa/runner'
import { execFileSync } from 'node:child_process'
import { closeSync, constants, openSync } from 'node:fs'
import { mkdtemp, rm, truncate, writeFile } from 'node:fs/promises'
import { createServer, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { resolveAwsCredentials } from '#gateway/providers/bedrock/aws_credentials'
import { resolveAdc } from '#gateway/providers/vertex/google_adc'
import { RefreshingCredential } from '#gateway/providers/refreshing_credential'

/**
 * The credential chains against hostile sources: a metadata endpoint whose
 * answer never ends, a profile or key file that is a FIFO or huge,
 * credentials holding CR/LF. None may hold memory without bound, hang the
 * chain (and a libuv thread with it), or put a header Node refuses on a
 * request.
 */
async function serve(handler: (res: ServerResponse) => void): Promise<{ server: Server; url: string; sent: () => number }> {
  let sent = 0
  const server = createServer((_req, res) => {
    const write = res.write.bind(res)
    res.write = ((chunk: any, ...rest: any[]) => {
      sent += chunk.length
      return write(chunk, ...rest)
    }) as any
    handler(res)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, sent: () => sent }
}

/** Writes `total` bytes of JSON-looking text, as fast as the socket takes them */
function flood(res: ServerResponse, total: number, headers: Record<string, string> = {}) {
  res.writeHead(200, { 'content-type': 'application/json', ...headers })
  const chunk = Buffer.alloc(256 * 1024, 'a')
  let left = total
  const more = () => {
    while (left > 0) {
      left -= chunk.length
      if (!res.write(chunk)) return void res.once('drain', more)
    }
    res.end()
  }
  res.on('close', () => (left = 0))
  more()
}

function within<T>(promise: Promise<T>, ms: number): Promise<T | 'hung'> {
  return Promise.race([promise, new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), ms))])
}

const FLOOD = 64 * 1024 * 1024

test.group('Cloud credential sources, hostile', (group) => {
  let dir: string
  group.each.setup(async () => {
    dir = await mkdtemp(join(tmpdir(), 'creds-'))
    return () => rm(dir, { recursive: true, force: true })
  })

  test('an AWS container endpoint answering without end is read no further than a credentials answer', async ({ assert }) => {
    const endpoint = await serve((res) => flood(res, FLOOD))
    try {
      await assert.rejects(() => resolveAwsCredentials({ AWS_CONTAINER_CREDENTIALS_FULL_URI: `${endpoint.url}/creds`, HOME: dir }), /no usable credentials/)
      await new Promise((resolve) => setTimeout(resolve, 100))
      assert.isBelow(endpoint.sent(), 16 * 1024 * 1024)
    } finally {
      endpoint.server.closeAllConnections()
      endpoint.server.close()
    }
  })

  test('a Google metadata server answering without end is read no further than a token answer', async ({ assert }) => {
    const metadata = await serve((res) => flood(res, FLOOD, { 'metadata-flavor': 'Google' }))
    try {
      const found = await resolveAdc({ GCE_METADATA_HOST: metadata.url.slice('http://'.length), CLOUDSDK_CONFIG: dir })
      await assert.rejects(() => found.token(), /no access_token/)
      await new Promise((resolve) => setTimeout(resolve, 100))
      assert.isBelow(metadata.sent(), 2 * 16 * 1024 * 1024)
    } finally {
      metadata.server.closeAllConnections()
      metadata.server.close()
    }
  })

  test('a profile, key or token file that is a FIFO is refused at once (no hang, no thread held); a huge one too', async ({ assert }) => {
    const fifo = join(dir, 'credentials')
    execFileSync('mkfifo', [fifo])
    const huge = join(dir, 'huge.json')
    await writeFile(huge, '{')
    await truncate(huge, 100 * 1024 * 1024)
    try {
      const aws = await within(resolveAwsCredentials({ AWS_SHARED_CREDENTIALS_FILE: fifo, AWS_CONFIG_FILE: join(dir, 'none'), HOME: dir }).catch((e: Error) => e), 1500)
      assert.instanceOf(aws, Error)
      assert.match((aws as Error).message, /cannot read .*not a regular file/)
      const token = await within(resolveAwsCredentials({ AWS_WEB_IDENTITY_TOKEN_FILE: fifo, AWS_ROLE_ARN: 'arn:aws:iam::1:role/r', HOME: dir }).catch((e: Error) => e), 1500)
      assert.match((token as Error).message, /not a regular file/)
      const google = await within(resolveAdc({ GOOGLE_APPLICATION_CREDENTIALS: fifo }).catch((e: Error) => e), 1500)
      assert.match((google as Error).message, /not a regular file/)
      const big = await resolveAdc({ GOOGLE_APPLICATION_CREDENTIALS: huge }).catch((e: Error) => e)
      assert.match((big as Error).message, /larger than/)
      const bigProfile = await resolveAwsCredentials({ AWS_SHARED_CREDENTIALS_FILE: huge, HOME: dir }).catch((e: Error) => e)
      assert.match((bigProfile as Error).message, /larger than/)
    } finally {
      // A read still blocked on the FIFO (before the fix) is let go: a writer opens and closes it.
      for (let i = 0; i < 3; i++) {
        try {
          closeSync(openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK))
        } catch {}
      }
    }
  })

  test('credentials holding CR/LF or spaces are no usable credentials (never a header Node refuses), and are not repeated', async ({ assert }) => {
    const secret = 'wJalrXUtnFEMI/K7MDENG\r\nx-injected: 1'
    const container = await serve((res) => {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ AccessKeyId: 'AKIAEXAMPLE', SecretAccessKey: secret, Token: 'tok', Expiration: new Date(Date.now() + 3600_000).toISOString() }))
    })
    const metadata = await serve((res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'metadata-flavor': 'Google' })
      res.end(JSON.stringify({ access_token: 'ya29.token\r\nx-injected: 1', expires_in: 3600 }))
    })
    try {
      const aws = await resolveAwsCredentials({ AWS_CONTAINER_CREDENTIALS_FULL_URI: `${container.url}/creds`, HOME: dir }).catch((e: Error) => e)
      assert.instanceOf(aws, Error)
      assert.match((aws as Error).message, /no usable credentials/)
      assert.notInclude((aws as Error).message, 'wJalr')
      const found = await resolveAdc({ GCE_METADATA_HOST: metadata.url.slice('http://'.length), CLOUDSDK_CONFIG: dir })
      const google = await found.token().catch((e: Error) => e)
      assert.instanceOf(google, Error)
      assert.notInclude((google as Error).message, 'ya29')
      // A profile's keys likewise (a stray space inside a key is a mistake, not a key)
      const profile = join(dir, 'profile')
      await writeFile(profile, '[default]\naws_access_key_id = AKIA EXAMPLE\naws_secret_access_key = s3cr3t\n')
      const fromProfile = await resolveAwsCredentials({ AWS_SHARED_CREDENTIALS_FILE: profile, AWS_CONFIG_FILE: join(dir, 'none'), HOME: dir }).catch((e: Error) => e)
      assert.instanceOf(fromProfile, Error)
      assert.notInclude((fromProfile as Error).message, 's3cr3t')
    } finally {
      for (const s of [container, metadata]) s.server.close()
    }
  })

  test('an absurd or missing Expiration is held an hour at most; one already past is not fetched again by every request', async ({ assert }) => {
    let expiration: string | undefined = '9999-12-31T23:59:59Z'
    const endpoint = await serve((res) => {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ AccessKeyId: 'ASIAEXAMPLE', SecretAccessKey: 'secret', Token: 'token', Expiration: expiration }))
    })
    try {
      for (const stated of ['9999-12-31T23:59:59Z', undefined, 'soon']) {
        expiration = stated
        const found = await resolveAwsCredentials({ AWS_CONTAINER_CREDENTIALS_FULL_URI: `${endpoint.url}/creds`, HOME: dir })
        assert.isNotNull(found.expiresAt, String(stated))
        assert.isAtMost(found.expiresAt!, Date.now() + 3600_000, String(stated))
      }
    } finally {
      endpoint.server.close()
    }
    let loads = 0
    const past = new RefreshingCredential<string>(async () => ({ value: `v${++loads}`, expiresAt: Date.now() - 60_000 }), 300_000)
    for (let i = 0; i < 5; i++) await past.get()
    assert.equal(loads, 1)
  })
})
