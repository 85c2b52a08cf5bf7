import { test } from '@japa/runner'
import {
  base32Decode,
  base32Encode,
  generateRecoveryCodes,
  generateSecret,
  hashRecoveryCode,
  hotp,
  matchingStep,
  normaliseRecoveryCode,
  otpauthUri,
  timeStep,
  totp,
  type TotpAlgorithm,
} from '#services/totp'

/** RFC 6238 appendix B: the seeds are ASCII digits, 20, 32 and 64 bytes long for SHA-1, -256, -512. */
const SEEDS: Record<TotpAlgorithm, Buffer> = {
  sha1: Buffer.from('12345678901234567890'),
  sha256: Buffer.from('12345678901234567890123456789012'),
  sha512: Buffer.from('1234567890123456789012345678901234567890123456789012345678901234'),
}

/** [Unix seconds, SHA-1, SHA-256, SHA-512] — the 8-digit codes of RFC 6238's table. */
const RFC_6238: Array<[number, string, string, string]> = [
  [59, '94287082', '46119246', '90693936'],
  [1111111109, '07081804', '68084774', '25091201'],
  [1111111111, '14050471', '67062674', '99943326'],
  [1234567890, '89005924', '91819424', '93441116'],
  [2000000000, '69279037', '90698825', '38618901'],
  [20000000000, '65353130', '77737706', '47863826'],
]

/** RFC 4226 appendix D: HOTP, 6 digits, counters 0 to 9, the same SHA-1 seed. */
const RFC_4226 = ['755224', '287082', '359152', '969429', '338314', '254676', '287922', '162583', '399871', '520489']

test.group('TOTP (RFC 6238)', () => {
  test('the RFC 6238 test vectors, 8 digits, SHA-1 (and SHA-256 / SHA-512)', ({ assert }) => {
    for (const [seconds, sha1, sha256, sha512] of RFC_6238) {
      const atMs = seconds * 1000
      assert.equal(totp(SEEDS.sha1, { atMs, digits: 8 }), sha1, `SHA-1 at ${seconds}`)
      assert.equal(totp(SEEDS.sha256, { atMs, digits: 8, algorithm: 'sha256' }), sha256, `SHA-256 at ${seconds}`)
      assert.equal(totp(SEEDS.sha512, { atMs, digits: 8, algorithm: 'sha512' }), sha512, `SHA-512 at ${seconds}`)
    }
  })

  test('6 digits, as used: the RFC 4226 HOTP vectors, and TOTP is the last 6 of the 8', ({ assert }) => {
    RFC_4226.forEach((code, counter) => assert.equal(hotp(SEEDS.sha1, counter), code, `counter ${counter}`))
    for (const [seconds, sha1] of RFC_6238) assert.equal(totp(SEEDS.sha1, { atMs: seconds * 1000 }), sha1.slice(2))
    // Leading zeros are kept: 1111111109 gives 081804, not 81804.
    assert.equal(totp(SEEDS.sha1, { atMs: 1111111109_000 }), '081804')
    assert.equal(timeStep(59_000), 1)
    assert.equal(timeStep(1111111109_000), 0x23523ec)
  })

  test('base32 round trip; the RFC seed is GEZDGNBVGY3TQOJQ… ; generated secrets are 20 random bytes', ({ assert }) => {
    assert.equal(base32Encode(SEEDS.sha1), 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ')
    assert.deepEqual(base32Decode('gezd gnbv-gy3t qojq gezdgnbvgy3tqojq'), SEEDS.sha1)
    // RFC 4648 section 10
    assert.equal(base32Encode(Buffer.from('foobar')), 'MZXW6YTBOI')
    assert.equal(base32Encode(Buffer.from('f')), 'MY')
    assert.equal(base32Decode('MZXW6YTBOI======')!.toString(), 'foobar')
    assert.isNull(base32Decode('not base32!'))
    const secrets = new Set<string>()
    for (let i = 0; i < 50; i++) {
      const secret = generateSecret()
      assert.match(secret, /^[A-Z2-7]{32}$/)
      assert.lengthOf(base32Decode(secret)!, 20)
      secrets.add(secret)
    }
    assert.equal(secrets.size, 50)
  })

  test('a typed code matches its step, one step either side for a drifting clock, no further', ({ assert }) => {
    const secret = base32Encode(SEEDS.sha1)
    const now = 1_700_000_000_000
    const step = timeStep(now)
    const at = (offset: number) => hotp(SEEDS.sha1, step + offset)
    assert.equal(matchingStep(secret, at(0), now), step)
    assert.equal(matchingStep(secret, at(-1), now), step - 1)
    assert.equal(matchingStep(secret, at(1), now), step + 1)
    assert.isNull(matchingStep(secret, at(-2), now))
    assert.isNull(matchingStep(secret, at(2), now))
    assert.equal(matchingStep(secret, `${at(0).slice(0, 3)} ${at(0).slice(3)}`, now), step, 'a space in the middle is read')
    assert.isNull(matchingStep(secret, '12345', now))
    assert.isNull(matchingStep(secret, 'abcdef', now))
    assert.isNull(matchingStep(secret, `${at(0)}0`, now))
  })

  test('the otpauth URI names the issuer and account, and carries the secret', ({ assert }) => {
    const uri = otpauthUri({ issuer: 'AI Gateway', account: 'ann+ops@example.com', secret: 'JBSWY3DPEHPK3PXP' })
    assert.equal(
      uri,
      'otpauth://totp/AI%20Gateway:ann%2Bops%40example.com?secret=JBSWY3DPEHPK3PXP&issuer=AI%20Gateway&algorithm=SHA1&digits=6&period=30'
    )
  })

  test('recovery codes: ten distinct XXXXX-XXXXX codes, read leniently, only hashes kept', ({ assert }) => {
    const { codes, hashes } = generateRecoveryCodes()
    assert.lengthOf(codes, 10)
    assert.equal(new Set(codes).size, 10)
    for (const [i, code] of codes.entries()) {
      assert.match(code, /^[0-9A-HJKMNP-TV-Z]{5}-[0-9A-HJKMNP-TV-Z]{5}$/)
      assert.equal(hashRecoveryCode(normaliseRecoveryCode(code)!), hashes[i])
      assert.match(hashes[i], /^[0-9a-f]{64}$/)
      assert.notInclude(hashes[i], code.replace('-', ''))
    }
    assert.equal(normaliseRecoveryCode(' 7k3mq 9xd2f\n'), '7K3MQ9XD2F')
    assert.equal(normaliseRecoveryCode('OIL00-11111'), '01100' + '11111')
    assert.isNull(normaliseRecoveryCode('123456'))
    assert.isNull(normaliseRecoveryCode('UUUUU-UUUUU'))
  })
})
