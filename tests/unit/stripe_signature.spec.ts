import { test } from '@japa/runner'
import { createHmac } from 'node:crypto'
import { stripeSignatureProblem } from '#services/payments/stripe_signature'

const secret = 'whsec_unit'
const body = Buffer.from('{"id":"evt_1","type":"checkout.session.completed"}')
const sign = (t: number, key = secret, payload = body) => createHmac('sha256', key).update(`${t}.`).update(payload).digest('hex')

test.group('Stripe webhook signatures', () => {
  test('a body signed with the endpoint secret, within five minutes, is genuine', ({ assert }) => {
    const now = 1_800_000_000_000
    const t = now / 1000 - 60
    assert.isNull(stripeSignatureProblem(body, `t=${t},v1=${sign(t)}`, secret, now))
    // While a secret is rolled Stripe sends a v1 per secret (and a v0 test scheme): any v1 may match.
    assert.isNull(stripeSignatureProblem(body, `t=${t},v1=${sign(t, 'whsec_old')},v1=${sign(t)},v0=abc`, secret, now))
  })

  test('says why anything else is refused', ({ assert }) => {
    const now = 1_800_000_000_000
    const t = now / 1000
    assert.equal(stripeSignatureProblem(body, undefined, secret, now), 'no Stripe-Signature header')
    assert.equal(stripeSignatureProblem(body, `v1=${sign(t)}`, secret, now), 'no timestamp in Stripe-Signature')
    assert.equal(stripeSignatureProblem(body, `t=${t},v0=${sign(t)}`, secret, now), 'no v1 signature in Stripe-Signature')
    assert.equal(stripeSignatureProblem(body, `t=${t},v1=${sign(t, 'whsec_other')}`, secret, now), 'signature does not match')
    assert.equal(stripeSignatureProblem(Buffer.from(body.toString() + ' '), `t=${t},v1=${sign(t)}`, secret, now), 'signature does not match')
    assert.equal(stripeSignatureProblem(body, `t=${t + 1},v1=${sign(t)}`, secret, now), 'signature does not match')
    const old = t - 301
    assert.include(stripeSignatureProblem(body, `t=${old},v1=${sign(old)}`, secret, now)!, 'tolerance')
  })
})
