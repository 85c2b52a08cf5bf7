import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import { createUser } from '#actions/create_user'
import { createApiKey } from '#actions/issue_api_key'
import { adminApi, baseUrl, refreshCaches, resetDatabase } from '#tests/helpers'

/**
 * Hostile and sloppy input against the last merges (batch custom ids, team
 * batch holds, the token counter, strict numbers, balance thresholds): a
 * value that is no whole number is refused naming its field, never read as
 * Number() reads it.
 */
let adminKey = ''

async function litellm(path: string, body: unknown) {
  const response = await fetch(`${baseUrl()}${path}`, {
    method: 'POST',
    headers: { 'authorization': `Bearer ${adminKey}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
  return { status: response.status, body: (await response.json()) as any }
}

/** Loose numbers Vine's number() read through Number(): 16, 1000, 5, 5, 1, 5 and (priority, weight) 0 */
const LOOSE = ['0x10', '1e3', ' 5', '5.0', true, [5], '']

test.group('Hostile input (s25): whole numbers in the management API and LiteLLM', (group) => {
  group.setup(async () => {
    await resetDatabase()
    await createUser({ email: 'ops-s25@test.local', password: 'admin-password', role: 'admin' })
    adminKey = (await createApiKey({ userRef: 'ops-s25@test.local', name: 'ops', manage: true })).key
    await refreshCaches()
  })

  test('key limits given as 0x10, 1e3, " 5", "5.0", true, [5] or "" are refused naming the field', async ({ assert }) => {
    const keysBefore = (await db.from('api_keys').count('* as n'))[0].n
    const made = await adminApi('POST', '/keys', adminKey, { user: 'ops-s25@test.local', name: 'target', rpm: 7 })
    assert.equal(made.status, 201)
    for (const value of LOOSE) {
      const label = JSON.stringify(value)
      for (const field of ['rpm', 'tpm', 'max_parallel_requests', 'expires_in_days']) {
        const created = await adminApi('POST', '/keys', adminKey, { user: 'ops-s25@test.local', [field]: value })
        assert.equal(created.status, 400, `POST ${field}=${label}: ${JSON.stringify(created.body)}`)
        assert.equal(created.body.error.code, 'invalid_field')
      }
      for (const field of ['rpm', 'tpm', 'max_parallel_requests']) {
        const patched = await adminApi('PATCH', `/keys/${made.body.id}`, adminKey, { [field]: value })
        assert.equal(patched.status, 400, `PATCH ${field}=${label}: ${JSON.stringify(patched.body)}`)
        assert.equal(patched.body.error.param, field)
      }
      for (const field of ['rpm_limit', 'tpm_limit', 'max_parallel_requests']) {
        const generated = await litellm('/key/generate', { user_id: 'ops-s25@test.local', [field]: value })
        assert.equal(generated.status, 400, `/key/generate ${field}=${label}: ${JSON.stringify(generated.body)}`)
        const updated = await litellm('/key/update', { key: String(made.body.id), [field]: value })
        assert.equal(updated.status, 400, `/key/update ${field}=${label}: ${JSON.stringify(updated.body)}`)
      }
    }
    assert.equal((await db.from('api_keys').count('* as n'))[0].n, Number(keysBefore) + 1, 'no key made')
    const kept = await db.from('api_keys').where('id', made.body.id).first()
    assert.equal(kept.rpm, 7)
    assert.isNull(kept.max_parallel)
    // Numbers and their digits stay accepted (LiteLLM's clients send both).
    const digits = await litellm('/key/generate', { user_id: 'ops-s25@test.local', rpm_limit: '12', tpm_limit: 3000, max_parallel_requests: '2' })
    assert.equal(digits.status, 200, JSON.stringify(digits.body))
    assert.equal(digits.body.rpm_limit, 12)
    const patched = await adminApi('PATCH', `/keys/${made.body.id}`, adminKey, { rpm: '9', tpm: 100, max_parallel_requests: null })
    assert.equal(patched.status, 200, JSON.stringify(patched.body))
    assert.equal(patched.body.rpm, 9)
  })

  test('channel numbers and redemption-code counts given loosely are refused, not read as 16, 1000, 1 or 0', async ({ assert }) => {
    const base = { provider: 'custom', base_url: 'http://127.0.0.1:9', models: ['s25-*'] }
    for (const value of LOOSE) {
      for (const field of ['priority', 'weight', 'connect_timeout_ms']) {
        const refused = await adminApi('POST', '/channels', adminKey, { ...base, name: `loose-${field}`, [field]: value })
        assert.equal(refused.status, 400, `${field}=${JSON.stringify(value)}: ${JSON.stringify(refused.body)}`)
        assert.equal(refused.body.error.code, 'invalid_field')
      }
      for (const field of ['count', 'expires_in_days']) {
        const refused = await adminApi('POST', '/redemption-codes', adminKey, { batch: 'loose', per_code: '1', [field]: value })
        assert.equal(refused.status, 400, `${field}=${JSON.stringify(value)}: ${JSON.stringify(refused.body)}`)
      }
    }
    assert.lengthOf(await db.from('channels').whereLike('name', 'loose-%'), 0)
    assert.lengthOf(await db.from('redemption_codes').where('batch', 'loose'), 0)
    const made = await adminApi('POST', '/channels', adminKey, { ...base, name: 'typed', priority: '-3', weight: '4', connect_timeout_ms: 2000 })
    assert.equal(made.status, 201, JSON.stringify(made.body))
    assert.equal(made.body.priority, -3)
    assert.equal(made.body.weight, 4)
    const patched = await adminApi('PATCH', `/channels/${made.body.id}`, adminKey, { priority: '-0x1' })
    assert.equal(patched.status, 400)
    const codes = await adminApi('POST', '/redemption-codes', adminKey, { batch: 'typed', per_code: '1', count: '2' })
    assert.equal(codes.status, 201, JSON.stringify(codes.body))
    assert.lengthOf(codes.body.codes, 2)
  })
})
