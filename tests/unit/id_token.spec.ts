import { test } from '@japa/runner'
import { createHmac, generateKeyPairSync, sign, constants, type KeyObject } from 'node:crypto'
import { verifyIdToken, type Jwk } from '#services/sso/id_token'
import { SsoError } from '#services/sso/sso_error'

/** The id_token check (app/services/sso/id_token.ts) over the algorithms providers use, and the forgeries it must refuse. */
const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url')
const now = Math.floor(Date.now() / 1000)
const claims = { iss: 'https://idp.example', sub: 'abc', aud: 'client', iat: now, exp: now + 300, nonce: 'n-1' }
const expect = (keys: Jwk[]) => ({ issuer: 'https://idp.example', clientId: 'client', nonce: 'n-1', keys: async () => keys })

function jws(header: Record<string, unknown>, payload: Record<string, unknown>, signer: (input: Buffer) => Buffer) {
  const head = `${b64(header)}.${b64(payload)}`
  return `${head}.${signer(Buffer.from(head)).toString('base64url')}`
}

async function refusal(promise: Promise<unknown>) {
  try {
    await promise
  } catch (error) {
    if (error instanceof SsoError) return error.reason
    throw error
  }
  return 'accepted'
}

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 })
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' })
const jwkOf = (key: KeyObject, kid: string) => ({ ...(key.export({ format: 'jwk' }) as Jwk), kid })

test.group('id_token verification', () => {
  test('RS256, PS256 and ES256 (JOSE signature encoding) verify; claims come back', async ({ assert }) => {
    const keys = [jwkOf(rsa.publicKey, 'r'), jwkOf(ec.publicKey, 'e')]
    const rs = jws({ alg: 'RS256', kid: 'r' }, claims, (input) => sign('sha256', input, rsa.privateKey))
    const ps = jws({ alg: 'PS256', kid: 'r' }, claims, (input) =>
      sign('sha256', input, { key: rsa.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST })
    )
    const es = jws({ alg: 'ES256', kid: 'e' }, claims, (input) => sign('sha256', input, { key: ec.privateKey, dsaEncoding: 'ieee-p1363' }))
    for (const token of [rs, ps, es]) assert.equal((await verifyIdToken(token, expect(keys))).sub, 'abc')
  })

  test('refused: alg none, HS256 with the public key, a key of the wrong type, several audiences without azp, a future iat', async ({ assert }) => {
    const keys = [jwkOf(rsa.publicKey, 'r')]
    const pem = rsa.publicKey.export({ format: 'pem', type: 'spki' })
    assert.equal(await refusal(verifyIdToken(`${b64({ alg: 'none', kid: 'r' })}.${b64(claims)}.`, expect(keys))), 'invalid_token')
    const hs = jws({ alg: 'HS256', kid: 'r' }, claims, (input) => createHmac('sha256', pem).update(input).digest())
    assert.equal(await refusal(verifyIdToken(hs, expect(keys))), 'invalid_token')
    const es = jws({ alg: 'ES256', kid: 'r' }, claims, (input) => sign('sha256', input, { key: ec.privateKey, dsaEncoding: 'ieee-p1363' }))
    assert.equal(await refusal(verifyIdToken(es, expect(keys))), 'invalid_token')
    const many = jws({ alg: 'RS256', kid: 'r' }, { ...claims, aud: ['client', 'other'] }, (input) => sign('sha256', input, rsa.privateKey))
    assert.equal(await refusal(verifyIdToken(many, expect(keys))), 'invalid_token')
    const manyAzp = jws({ alg: 'RS256', kid: 'r' }, { ...claims, aud: ['client', 'other'], azp: 'client' }, (input) => sign('sha256', input, rsa.privateKey))
    assert.equal(await refusal(verifyIdToken(manyAzp, expect(keys))), 'accepted')
    const future = jws({ alg: 'RS256', kid: 'r' }, { ...claims, iat: now + 3600 }, (input) => sign('sha256', input, rsa.privateKey))
    assert.equal(await refusal(verifyIdToken(future, expect(keys))), 'invalid_token')
    // Within the 60 s skew: accepted.
    const skewed = jws({ alg: 'RS256', kid: 'r' }, { ...claims, exp: now - 30 }, (input) => sign('sha256', input, rsa.privateKey))
    assert.equal(await refusal(verifyIdToken(skewed, expect(keys))), 'accepted')
  })

  test('an unknown kid asks for the keys again, once', async ({ assert }) => {
    const asked: boolean[] = []
    const token = jws({ alg: 'RS256', kid: 'new' }, claims, (input) => sign('sha256', input, rsa.privateKey))
    const keys = async (refresh: boolean) => {
      asked.push(refresh)
      return refresh ? [jwkOf(rsa.publicKey, 'new')] : [jwkOf(rsa.publicKey, 'old')]
    }
    assert.equal((await verifyIdToken(token, { ...expect([]), keys })).sub, 'abc')
    assert.deepEqual(asked, [false, true])
    asked.length = 0
    const unknown = jws({ alg: 'RS256', kid: 'gone' }, claims, (input) => sign('sha256', input, rsa.privateKey))
    assert.equal(await refusal(verifyIdToken(unknown, { ...expect([]), keys })), 'invalid_token')
    assert.deepEqual(asked, [false, true])
  })
})
