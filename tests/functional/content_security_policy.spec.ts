import { test } from '@japa/runner'
import env from '#start/env'
import { baseUrl, resetDatabase, seedUser } from '#tests/helpers'

/**
 * The pages' security headers (config/shield.ts, the referrer-policy
 * middleware): a strict Content-Security-Policy with a fresh nonce per
 * response, the one the page's inline script carries; Referrer-Policy
 * same-origin. The API (/v1, /api/admin) never runs shield: no CSP there.
 */
const nonceOf = (csp: string | null) => /script-src 'self' 'nonce-([^']+)'/.exec(csp ?? '')?.[1]

test.group('Content-Security-Policy and Referrer-Policy on pages', (group) => {
  group.setup(async () => {
    await resetDatabase()
  })

  test('a page carries the policy; each response a new nonce, the one its inline script has', async ({ assert }) => {
    const first = await fetch(`${baseUrl()}/docs`)
    const second = await fetch(`${baseUrl()}/docs`)
    assert.equal(first.status, 200)
    const csp = first.headers.get('content-security-policy')!
    const directives = csp.split(';').map((d) => d.trim())
    for (const directive of [
      "default-src 'self'",
      "script-src-attr 'none'",
      "style-src 'self'",
      "img-src 'self' data:",
      "object-src 'none'",
      "base-uri 'self'",
      "form-action 'self'",
      "frame-ancestors 'none'",
    ]) {
      assert.include(directives, directive)
    }
    // No 'unsafe-inline' or 'unsafe-eval' anywhere.
    assert.notMatch(csp, /unsafe/)

    const nonce = nonceOf(csp)
    assert.match(nonce ?? '', /^[\w-]{16,}$/)
    assert.notEqual(nonceOf(second.headers.get('content-security-policy')), nonce)
    const html = await first.text()
    assert.include(html, `<script nonce="${nonce}">`)
    // Every executable inline script has it (the JSON data blocks are not run).
    for (const tag of html.match(/<script(?![^>]*\ssrc=)[^>]*>/g) ?? []) {
      if (!tag.includes('application/json')) assert.include(tag, `nonce="${nonce}"`)
    }
    assert.equal(first.headers.get('referrer-policy'), 'same-origin')
    assert.equal(first.headers.get('x-frame-options'), 'DENY')

    const login = await fetch(`${baseUrl()}/login`)
    assert.match(login.headers.get('content-security-policy') ?? '', /script-src 'self' 'nonce-/)
    assert.equal(login.headers.get('referrer-policy'), 'same-origin')
  })

  test('card top-ups on: form-action also allows Stripe Checkout (the checkout POST redirects there)', async ({ assert }) => {
    env.set('STRIPE_SECRET_KEY', 'sk_test_csp')
    env.set('STRIPE_API_BASE', 'http://127.0.0.1:9/stripe')
    try {
      const csp = (await fetch(`${baseUrl()}/login`)).headers.get('content-security-policy') ?? ''
      assert.match(csp, /form-action 'self' https:\/\/checkout\.stripe\.com http:\/\/127\.0\.0\.1:9(;|$)/)
    } finally {
      env.set('STRIPE_SECRET_KEY', '')
      env.set('STRIPE_API_BASE', '')
    }
    const off = (await fetch(`${baseUrl()}/login`)).headers.get('content-security-policy') ?? ''
    assert.notInclude(off, 'stripe')
  })

  test('the API sends neither header: /v1 (answers and errors) and /api/admin', async ({ assert }) => {
    const user = await seedUser()
    const answers = [
      await fetch(`${baseUrl()}/v1/models`, { headers: { authorization: `Bearer ${user.key}` } }),
      await fetch(`${baseUrl()}/v1/models`),
      await fetch(`${baseUrl()}/v1/usage`, { headers: { authorization: `Bearer ${user.key}` } }),
      await fetch(`${baseUrl()}/api/admin/users`, { headers: { authorization: `Bearer ${user.key}` } }),
    ]
    assert.deepEqual(answers.map((a) => a.status), [200, 401, 200, 403])
    for (const answer of answers) {
      assert.isNull(answer.headers.get('content-security-policy'), answer.url)
      assert.isNull(answer.headers.get('referrer-policy'), answer.url)
      await answer.text()
    }
  })
})
