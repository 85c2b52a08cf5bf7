import type { ServerResponse } from 'node:http'
import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import { GatewayError } from '#exceptions/gateway_error'
import { MinuteWindows, WINDOW_MS } from '#gateway/limits/minute_windows'
import { addEndUserTokens, addTokens, admit, admitEndUser, useLimiterStore } from '#gateway/limits/rate_limits'
import type { EndUserPolicy } from '#gateway/end_users/end_user_policies'
import type { Principal } from '#gateway/types'

/** A principal with the given limits; ids far from the functional tests' so no window is shared. */
let nextId = 900_000
function principal(limits: { keyRpm?: number; planRpm?: number; keyTpm?: number; planTpm?: number }): Principal {
  const id = nextId++
  return {
    key: { id, rpm: limits.keyRpm ?? null, tpm: limits.keyTpm ?? null },
    user: { id },
    plan: limits.planRpm || limits.planTpm ? { rpm: limits.planRpm ?? null, tpm: limits.planTpm ?? null } : null,
  } as unknown as Principal
}

function response() {
  const headers: Record<string, string> = {}
  const res = { setHeader: (name: string, value: string) => (headers[name] = value), getHeader: (name: string) => headers[name] }
  return { headers, res: res as unknown as ServerResponse }
}

async function tryAdmit(p: Principal) {
  const { headers, res } = response()
  try {
    await admit(p, res)
    return { status: 200, headers }
  } catch (error) {
    if (!(error instanceof GatewayError)) throw error
    return { status: error.status, headers: error.headers ?? {} }
  }
}

/*
 * The same behaviour from the in-memory windows (the default, one instance)
 * and from @adonisjs/limiter's database store (LIMITER_STORE=database).
 */
for (const store of ['memory', 'database'] as const) {
  test.group(`Rate limits, ${store} store`, (group) => {
    group.setup(async () => {
      useLimiterStore(store)
      // The table outlives a run (the limiter's clear() only reaches stores it has used in this process).
      if (store === 'database') await db.rawQuery('TRUNCATE rate_limits')
      return () => useLimiterStore('memory')
    })

    test('key RPM: admits up to the limit, then 429 with Retry-After, counting down the headers', async ({ assert }) => {
      const p = principal({ keyRpm: 3 })
      const first = await tryAdmit(p)
      assert.equal(first.status, 200)
      assert.equal(first.headers['x-ratelimit-limit-requests'], '3')
      assert.equal(first.headers['x-ratelimit-remaining-requests'], '2')
      assert.match(first.headers['x-ratelimit-reset-requests'], /^(59|60)s$/)
      await tryAdmit(p)
      assert.equal((await tryAdmit(p)).headers['x-ratelimit-remaining-requests'], '0')
      const refused = await tryAdmit(p)
      assert.equal(refused.status, 429)
      assert.equal(refused.headers['x-ratelimit-remaining-requests'], '0')
      const retryAfter = Number(refused.headers['retry-after'])
      assert.isAbove(retryAfter, 0)
      assert.isAtMost(retryAfter, 60)
      // Still refused: a refused request counts too, the window does not reopen early.
      assert.equal((await tryAdmit(p)).status, 429)
    })

    test('the tightest request window names the headers; a request the key refuses is not counted on the plan', async ({ assert }) => {
      const p = principal({ keyRpm: 2, planRpm: 5 })
      const first = await tryAdmit(p)
      assert.equal(first.headers['x-ratelimit-limit-requests'], '2')
      assert.equal(first.headers['x-ratelimit-remaining-requests'], '1')
      await tryAdmit(p)
      assert.equal((await tryAdmit(p)).status, 429)
      // The plan counted 2 (not 3): another key of the same user has 3 left on the plan.
      const sibling = { ...p, key: { ...p.key, id: nextId++, rpm: null } } as Principal
      const other = await tryAdmit(sibling)
      assert.equal(other.headers['x-ratelimit-limit-requests'], '5')
      assert.equal(other.headers['x-ratelimit-remaining-requests'], '2')
    })

    test('TPM: tokens are counted after the request; a new one is refused once the minute is spent', async ({ assert }) => {
      const p = principal({ keyTpm: 100, planTpm: 1000 })
      const first = await tryAdmit(p)
      assert.equal(first.status, 200)
      assert.equal(first.headers['x-ratelimit-limit-tokens'], '100')
      assert.equal(first.headers['x-ratelimit-remaining-tokens'], '100')
      assert.equal(first.headers['x-ratelimit-reset-tokens'], '60s')
      assert.isUndefined(first.headers['x-ratelimit-limit-requests'])
      await addTokens(p, 60)
      const second = await tryAdmit(p)
      assert.equal(second.headers['x-ratelimit-remaining-tokens'], '40')
      await addTokens(p, 60)
      const refused = await tryAdmit(p)
      assert.equal(refused.status, 429)
      assert.equal(refused.headers['x-ratelimit-limit-tokens'], '100')
      assert.equal(refused.headers['x-ratelimit-remaining-tokens'], '0')
      assert.isUndefined(refused.headers['x-ratelimit-limit-requests'])
    })

    test('a team\'s RPM and TPM are one window shared by its keys', async ({ assert }) => {
      const team = { id: nextId++, rpm: 2, tpm: 100 }
      const a = { ...principal({}), team } as Principal
      const b = { ...principal({}), team } as Principal
      assert.equal((await tryAdmit(a)).headers['x-ratelimit-remaining-requests'], '1')
      assert.equal((await tryAdmit(b)).headers['x-ratelimit-remaining-requests'], '0')
      const refused = await tryAdmit(a)
      assert.equal(refused.status, 429)
      assert.equal(refused.headers['x-ratelimit-limit-requests'], '2')
      // Tokens metered through one key are spent for the other (a new team: a fresh request window).
      const tokens = { id: nextId++, rpm: null, tpm: 100 }
      const c = { ...principal({}), team: tokens } as Principal
      const d = { ...principal({}), team: tokens } as Principal
      await addTokens(c, 100)
      assert.equal((await tryAdmit(d)).status, 429)
    })

    test('an organization\'s RPM and TPM are one window shared by the keys of all its teams', async ({ assert }) => {
      const org = { id: nextId++, rpm: 2, tpm: 100 }
      // Two teams without limits of their own, one organization.
      const a = { ...principal({}), team: { id: nextId++, rpm: null, tpm: null }, org } as unknown as Principal
      const b = { ...principal({}), team: { id: nextId++, rpm: null, tpm: null }, org } as unknown as Principal
      assert.equal((await tryAdmit(a)).headers['x-ratelimit-remaining-requests'], '1')
      assert.equal((await tryAdmit(b)).headers['x-ratelimit-remaining-requests'], '0')
      const refused = await tryAdmit(a)
      assert.equal(refused.status, 429)
      assert.equal(refused.headers['x-ratelimit-limit-requests'], '2')
      const tokens = { id: nextId++, rpm: null, tpm: 100 }
      const c = { ...principal({}), team: { id: nextId++, rpm: null, tpm: null }, org: tokens } as unknown as Principal
      const d = { ...principal({}), team: { id: nextId++, rpm: null, tpm: null }, org: tokens } as unknown as Principal
      await addTokens(c, 100)
      assert.equal((await tryAdmit(d)).status, 429)
    })

    test('an end user\'s RPM and TPM: its own windows, whatever key sends it; its headers when tighter than the key\'s', async ({ assert }) => {
      const policy = { id: nextId++, rpm: 2, tpm: null } as unknown as EndUserPolicy
      const admitBoth = async (p: Principal) => {
        const { headers, res } = response()
        try {
          await admit(p, res)
          await admitEndUser(policy, res)
          return { status: 200, headers }
        } catch (error) {
          if (!(error instanceof GatewayError)) throw error
          return { status: error.status, headers: error.headers ?? {} }
        }
      }
      const first = await admitBoth(principal({ keyRpm: 100 }))
      assert.equal(first.headers['x-ratelimit-limit-requests'], '2')
      assert.equal(first.headers['x-ratelimit-remaining-requests'], '1')
      assert.equal((await admitBoth(principal({}))).status, 200)
      const refused = await admitBoth(principal({}))
      assert.equal(refused.status, 429)
      assert.isDefined(refused.headers['retry-after'])
      const tokens = { id: nextId++, rpm: null, tpm: 50 } as unknown as EndUserPolicy
      await addEndUserTokens(tokens, 50)
      const { res } = response()
      await assert.rejects(async () => admitEndUser(tokens, res))
    })
  })
}

test.group('MinuteWindows', () => {
  test('a window opens at its first hit, counts past the limit, and the next hit after it ends opens a new one', ({ assert }) => {
    const windows = new MinuteWindows()
    const t0 = 1_000_000
    assert.equal(windows.add(7, 1, t0).used, 1)
    assert.equal(windows.add(7, 5, t0 + 10).used, 6)
    assert.equal(windows.peek(7, t0 + WINDOW_MS - 1)?.used, 6)
    assert.isUndefined(windows.peek(7, t0 + WINDOW_MS))
    const next = windows.add(7, 2, t0 + WINDOW_MS)
    assert.equal(next.used, 2)
    assert.equal(next.endsAt, t0 + 2 * WINDOW_MS)
  })

  test('the sweep drops ended windows only', ({ assert }) => {
    const windows = new MinuteWindows()
    windows.add(1, 1, 0)
    windows.add(2, 1, 30_000)
    windows.sweep(WINDOW_MS)
    assert.equal(windows.size, 1)
    assert.isUndefined(windows.peek(1, WINDOW_MS))
    assert.equal(windows.peek(2, WINDOW_MS)?.used, 1)
  })
})
