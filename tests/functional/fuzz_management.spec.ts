import { test } from '@japa/runner'
import { createUser } from '#actions/create_user'
import { createApiKey } from '#actions/issue_api_key'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { adminApi, baseUrl, post, refreshCaches, resetDatabase, seedChannel, seedPrice, seedUser, startMock } from '#tests/helpers'
import { damager, errorShape, ODD_STRINGS, pick, prng, STACK_TRACE, type Random } from '#tests/fuzz_kit'

/**
 * A seeded fuzz of the management API (`/api/admin/*`) and LiteLLM's management paths (`/key/*`, `/user/*`,
 * `/team/*`, `/organization/*`, `/customer/*`, `/budget/*`, spend reports), as the generation endpoints have one
 * (fuzz.spec.ts). Scripts and billing systems call these with whatever their language serialises: numbers as
 * strings, nulls, arrays for scalars, keys from another API. Each case is a valid body with random damage, or a
 * list path with random query parameters. Whatever comes back: never a 5xx, every error in the OpenAI envelope
 * LiteLLM's clients read (`{error:{message,type,code}}`), never a stack trace; afterwards the management key and an
 * everyday key still work. Deletes are left out: what they may remove is the next case's subject.
 *
 * FUZZ_SEED and FUZZ_CASES (per family) reproduce or widen a run.
 */
const SEED = Number(process.env.FUZZ_SEED ?? 20_261_206)
const CASES = Number(process.env.FUZZ_CASES ?? 240)
const CONCURRENCY = 6

const FIELD_NAMES = [
  'user', 'email', 'name', 'models', 'max_budget', 'budget_period', 'budget_duration', 'rpm', 'tpm', 'rpm_limit', 'tpm_limit',
  'budget_id', 'team_id', 'organization_id', 'key', 'keys', 'user_id', 'user_ids', 'user_email', 'amount', 'kind', 'members',
  'member', 'role', 'blocked', 'spend_limit', 'spend_period', 'metadata', 'key_alias', 'team_alias', 'expires', 'duration',
  'plan', 'weight', 'priority', 'base_url', 'provider', 'input', 'output', '__proto__', 'constructor',
]
const { damage } = damager(FIELD_NAMES)

/** What the group's setup made, for paths and bodies that name existing things. */
interface Seeded {
  userId: number
  userEmail: string
  keyId: number
  keyToken: string
  teamId: string
  orgId: string
  channelId: number
  mockUrl: string
}

interface Case {
  method: 'GET' | 'POST' | 'PATCH'
  path: string
  body?: Record<string, any>
}

/** Writes, with a body each: the same actions the panel and ace use behind them. */
function writes(s: Seeded): Case[] {
  return [
    { method: 'POST', path: '/api/admin/users', body: { email: 'fz-new@test.local', plan: null } },
    { method: 'PATCH', path: `/api/admin/users/${s.userId}`, body: { name: 'Fuzzed', plan: null } },
    { method: 'POST', path: `/api/admin/users/${s.userId}/ledger`, body: { kind: 'topup', amount: '5' } },
    { method: 'POST', path: '/api/admin/keys', body: { user: s.userEmail, name: 'fz', spend_limit: '10', spend_period: 'month', rpm: 600, models: ['fz-*'] } },
    { method: 'PATCH', path: `/api/admin/keys/${s.keyId}`, body: { name: 'renamed', rpm: 100, tpm: 1000 } },
    { method: 'POST', path: '/api/admin/redemption-codes', body: { batch: 'fz-batch', per_code: '2', count: 2 } },
    { method: 'POST', path: '/api/admin/redemption-codes/disable', body: { batch: 'fz-batch' } },
    { method: 'POST', path: '/api/admin/budgets', body: { budget_id: 'fz-tier', max_budget: '12.5', budget_period: 'week', rpm: 30, tpm: '5000' } },
    { method: 'PATCH', path: '/api/admin/budgets/fz-tier', body: { max_budget: '20' } },
    { method: 'POST', path: '/api/admin/end-users', body: { user: s.userId, end_user: 'fz-end-user', budget_id: 'fz-tier', rpm: 10 } },
    { method: 'POST', path: '/api/admin/teams', body: { alias: 'fz-team-2', max_budget: '10', budget_period: 'month', models: ['fz-*'] } },
    { method: 'PATCH', path: `/api/admin/teams/${s.teamId}`, body: { max_budget: '15', rpm: 60 } },
    { method: 'POST', path: `/api/admin/teams/${s.teamId}/members`, body: { user: s.userEmail, role: 'user' } },
    { method: 'PATCH', path: `/api/admin/teams/${s.teamId}/members/${s.userId}`, body: { max_budget: '1', budget_period: 'day' } },
    { method: 'POST', path: '/api/admin/organizations', body: { alias: 'fz-org-2', max_budget: '100' } },
    { method: 'PATCH', path: `/api/admin/organizations/${s.orgId}`, body: { max_budget: '50' } },
    { method: 'POST', path: `/api/admin/organizations/${s.orgId}/members`, body: { user: s.userEmail, role: 'internal_user' } },
    { method: 'POST', path: '/api/admin/channels', body: { name: 'fz-ch-2', provider: 'custom', base_url: s.mockUrl, models: ['fz-other'], priority: 1 } },
    { method: 'PATCH', path: `/api/admin/channels/${s.channelId}`, body: { weight: 2, priority: 3 } },
    { method: 'POST', path: `/api/admin/channels/${s.channelId}/models`, body: { models: ['fz-admin-model', 'fz-alias'] } },
    { method: 'POST', path: `/api/admin/channels/${s.channelId}/balance`, body: {} },
    { method: 'POST', path: '/api/admin/prices', body: { model: 'fz-admin-model', input: '1.5', output: '2', per_request: '0.01' } },
    { method: 'PATCH', path: '/api/admin/settings/sensitive-words', body: { enabled: false, words: ['fzword'], check: 'prompt' } },
    { method: 'POST', path: '/key/generate', body: { user_id: s.userEmail, key_alias: 'fz-lite', max_budget: 4, budget_duration: '1d', models: ['fz-*'], rpm_limit: 10, metadata: { a: 1 } } },
    { method: 'POST', path: '/key/update', body: { key: s.keyToken, key_alias: 'renamed', max_budget: 2.5, budget_duration: '7d', rpm_limit: null } },
    { method: 'POST', path: '/key/block', body: { key: s.keyToken } },
    { method: 'POST', path: '/key/unblock', body: { key: s.keyToken } },
    { method: 'POST', path: '/key/regenerate', body: { key: s.keyToken } },
    { method: 'POST', path: '/user/new', body: { user_email: 'fz-lite@test.local', user_role: 'internal_user', max_budget: 10, key_alias: 'first' } },
    { method: 'POST', path: '/user/update', body: { user_id: String(s.userId), max_budget: 20, user_role: 'internal_user' } },
    { method: 'POST', path: '/customer/new', body: { user_id: 'fz-cust', owner: s.userId, budget_id: 'fz-tier' } },
    { method: 'POST', path: '/customer/update', body: { user_id: 'fz-cust', owner: s.userId, budget_id: null } },
    { method: 'POST', path: '/customer/block', body: { user_ids: ['fz-cust'], owner: s.userId } },
    { method: 'POST', path: '/customer/unblock', body: { user_ids: ['fz-cust'], owner: s.userId } },
    { method: 'POST', path: '/budget/new', body: { budget_id: 'fz-lite-tier', max_budget: 4, budget_duration: '1d', rpm_limit: 10, tpm_limit: 1000 } },
    { method: 'POST', path: '/budget/update', body: { budget_id: 'fz-lite-tier', max_budget: 5, budget_duration: '7d' } },
    { method: 'POST', path: '/budget/info', body: { budgets: ['fz-lite-tier'] } },
    { method: 'POST', path: '/team/new', body: { team_alias: 'fz-lite-team', max_budget: 3, models: ['fz-*'] } },
    { method: 'POST', path: '/team/update', body: { team_id: s.teamId, rpm_limit: 5, max_budget: 4 } },
    { method: 'POST', path: '/team/member_add', body: { team_id: s.teamId, member: { user_email: s.userEmail, role: 'user' } } },
    { method: 'POST', path: '/team/member_update', body: { team_id: s.teamId, user_id: String(s.userId), max_budget_in_team: 0.02 } },
    { method: 'POST', path: '/organization/new', body: { organization_alias: 'fz-lite-org', max_budget: 9 } },
    { method: 'POST', path: '/organization/update', body: { organization_id: s.orgId, max_budget: 1 } },
    { method: 'POST', path: '/organization/member_add', body: { organization_id: s.orgId, member: { user_email: s.userEmail, role: 'internal_user' } } },
    { method: 'POST', path: '/organization/info', body: { organizations: [s.orgId] } },
    { method: 'POST', path: '/utils/token_counter', body: { model: 'fz-admin-model', messages: [{ role: 'user', content: 'hi' }] } },
  ]
}

/** Reads whose query strings a script builds: dates, limits, ids, filters. */
const READS = [
  '/api/admin/users', '/api/admin/keys', '/api/admin/usage', '/api/admin/channels', '/api/admin/prices', '/api/admin/end-users',
  '/api/admin/teams', '/api/admin/organizations', '/api/admin/budgets', '/key/list', '/key/info', '/user/info', '/user/list',
  '/customer/list', '/customer/info', '/budget/list', '/budget/settings', '/team/list', '/team/info', '/organization/list',
  '/spend/logs', '/spend/tags', '/global/spend/logs', '/global/spend/keys', '/global/spend/models', '/global/spend/report',
]
const QUERY_NAMES = ['user', 'user_id', 'key', 'api_key', 'team_id', 'organization_id', 'budget_id', 'end_user_id', 'owner', 'limit', 'page', 'page_size', 'size', 'before', 'after', 'start_date', 'end_date', 'group_by', 'model', 'return_full_object', 'key_alias', 'tags']
const QUERY_VALUES = ['1', '0', '-1', '99999999999999999999', '1.5', 'true', 'True', 'yesterday', '2026-13-40', '2020-01-01', 'api_key', 'team', 'customer', 'org', '%00', '%zz', '%ED%A0%80', 'a'.repeat(3000), '[]', '{}', 'null']

function readCase(random: Random): Case {
  const params: string[] = []
  for (let i = 1 + Math.floor(random() * 4); i > 0; i--) {
    const value = random() < 0.8 ? pick(random, QUERY_VALUES) : encodeURIComponent(pick(random, ODD_STRINGS.filter((t) => !/[\ud800-\udfff]/.test(t))))
    params.push(`${pick(random, QUERY_NAMES)}=${value}`)
  }
  return { method: 'GET', path: `${pick(random, READS)}?${params.join('&')}` }
}

test.group('Fuzz of the management API and LiteLLM\'s management paths', (group) => {
  let mock: MockUpstream
  let adminKey = ''
  let seeded: Seeded

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock({ record: 0 })
    // Users and keys before the administrator's, so a damaged id (1, 10...) names one of them, not the fuzzer's own key.
    for (let i = 0; i < 12; i++) await seedUser({ email: `filler${i}@fz.local` })
    const subject = await seedUser({ email: 'subject@fz.local', balance: '100' })
    await createUser({ email: 'fz-admin@test.local', password: 'password123', role: 'admin' })
    adminKey = (await createApiKey({ userRef: 'fz-admin@test.local', name: 'fuzzer', manage: true })).key
    const channel = await seedChannel({ name: 'fz-admin-ch', baseUrl: mock.url, models: ['fz-admin-model'] })
    await seedChannel({ name: 'fz-health-ch', baseUrl: mock.url, models: ['fz-health-model'] })
    await seedPrice('fz-*', '0.01', '0.02')
    await refreshCaches()
    const team = await adminApi('POST', '/teams', adminKey, { alias: 'fz-team' })
    const org = await adminApi('POST', '/organizations', adminKey, { alias: 'fz-org' })
    if (team.status !== 201 || org.status !== 201) throw new Error(`setup: team ${team.status} ${JSON.stringify(team.body)}, organization ${org.status} ${JSON.stringify(org.body)}`)
    seeded = {
      userId: subject.userId,
      userEmail: subject.email,
      keyId: subject.keyId,
      keyToken: subject.key,
      teamId: String(team.body.id ?? team.body.team_id),
      orgId: String(org.body.id ?? org.body.organization_id),
      channelId: Number(channel.id),
      mockUrl: mock.url,
    }
    return () => mock.stop()
  })

  test('{title}')
    .with([
      { family: 'writes' as const, title: `writes: ${CASES} damaged bodies` },
      { family: 'reads' as const, title: `reads: ${CASES} random query strings` },
    ])
    .run(async ({ assert }, { family }) => {
      const random = prng(SEED + (family === 'writes' ? 0 : 1))
      const templates = writes(seeded)
      const queue: Case[] = Array.from({ length: CASES }, () => {
        if (family === 'reads') return readCase(random)
        const template = pick(random, templates)
        return { ...template, body: random() < 0.1 ? template.body : damage(random, template.body!) }
      })
      const statuses = new Map<number, number>()
      const failures: string[] = []

      const runOne = async (c: Case) => {
        const response = await fetch(`${baseUrl()}${c.path}`, {
          method: c.method,
          headers: { authorization: `Bearer ${adminKey}`, ...(c.body ? { 'content-type': 'application/json' } : {}) },
          body: c.body ? JSON.stringify(c.body) : undefined,
        })
        const raw = await response.text()
        statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1)
        const where = `${response.status} ${c.method} ${c.path.slice(0, 200)} ${JSON.stringify(c.body ?? null).slice(0, 300)} -> ${raw.slice(0, 300)}`
        if (STACK_TRACE.test(raw)) failures.push(`stack trace: ${where}`)
        if (response.status >= 500) failures.push(`5xx: ${where}`)
        if (response.status >= 400) {
          let parsed: any = null
          try {
            parsed = JSON.parse(raw)
          } catch {}
          if (!errorShape('openai', parsed)) failures.push(`error format: ${where}`)
        }
      }

      const workers = Array.from({ length: CONCURRENCY }, async () => {
        for (let c = queue.shift(); c; c = queue.shift()) await runOne(c)
      })
      await Promise.all(workers)
      assert.deepEqual(failures.slice(0, 5), [], `${failures.length} failures, statuses ${JSON.stringify([...statuses])}`)
      // Most cases reached the code behind the checks rather than all bouncing off one of them.
      assert.isAbove(statuses.get(200) ?? 0, CASES / 10, JSON.stringify([...statuses]))

      // The management key still manages, and the gateway still serves an everyday key.
      assert.equal((await adminApi('GET', '/users', adminKey)).status, 200)
      const everyday = await seedUser({ balance: '10' })
      const chat = await post('/v1/chat/completions', { model: 'fz-health-model', messages: [{ role: 'user', content: 'hi' }] }, { authorization: `Bearer ${everyday.key}` })
      assert.equal(chat.status, 200)
    })
})
