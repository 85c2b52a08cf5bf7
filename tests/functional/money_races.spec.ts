import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import { createUser } from '#actions/create_user'
import { postLedgerEntry } from '#actions/post_ledger_entry'
import { createRedemptionCodes } from '#actions/create_redemption_codes'
import { redeemCode } from '#actions/redeem_code'
import { referralCodeOf, setReferralTerms, welcomeInvitee, referralTerms } from '#actions/referrals'
import { registerUser } from '#actions/register_user'
import { PortalInputError } from '#actions/portal_input_error'
import { cliActor } from '#actions/audit'
import { createApiKey } from '#actions/issue_api_key'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { post, refreshCaches, resetDatabase, seedChannel, seedPrice, seedUser, startMock } from '#tests/helpers'
import { PanelClient, textOf } from '#tests/panel_client'
import { all, ledgerOf, ledgerProblems } from '#tests/money_checks'

/**
 * The money paths that credit a balance (codes, referral rewards, an
 * operator's entries), raced: each credit lands once, however many
 * requests ask for it at the same moment, and the ledger still adds up.
 */
let mailbox = 0
const email = () => `race${++mailbox}-${Date.now()}@test.local`
const portal = (id: number) => ({ id, label: `user ${id}`, source: 'portal' as const })

async function newUser(role: 'user' | 'admin' = 'user') {
  const address = email()
  const { user } = await createUser({ email: address, password: 'password123', role })
  return { id: user.id, email: address }
}

async function oneCode(amount = '5') {
  const { codes } = await createRedemptionCodes({ batch: `race-${++mailbox}`, amount, count: 1 })
  return codes[0].code
}

test.group('Money races: credits land once', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'mock', baseUrl: mock.url, models: ['*'] })
    await seedPrice('race-*', '1000', '2000')
    return () => mock.stop()
  })
  group.each.teardown(async () => {
    await setReferralTerms({ inviterCredit: '0', inviteeCredit: '0' }, cliActor())
  })

  test('one code redeemed 30 times at once by its user, and 15 + 15 times by two users: one top-up', async ({ assert }) => {
    const alone = await newUser()
    const code = await oneCode('5')
    const results = await all(30, () => redeemCode(alone.id, code, portal(alone.id)))
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1)
    assert.deepEqual(await ledgerOf(alone.id).then((rows) => rows.map((r) => r.amount)), ['5.000000000000'])

    const [a, b] = [await newUser(), await newUser()]
    const shared = await oneCode('7')
    const raced = await all(30, (i) => redeemCode(i % 2 ? a.id : b.id, shared, portal(i % 2 ? a.id : b.id)))
    assert.equal(raced.filter((r) => r.status === 'fulfilled').length, 1)
    const credited = [...(await ledgerOf(a.id)), ...(await ledgerOf(b.id))]
    assert.deepEqual(credited.map((r) => r.amount), ['7.000000000000'])
    const audits = await db.from('audit_log').where('action', 'redemption.redeem').whereIn('subject_id', [a.id, b.id]).count('* as n')
    assert.equal(Number(audits[0].n), 1)
    assert.deepEqual(await ledgerProblems(), [])
  })

  test('an invitee\'s first top-ups race (admin top-ups and codes at once): the inviter is rewarded once', async ({ assert }) => {
    await setReferralTerms({ inviterCredit: '2', inviteeCredit: '1' }, cliActor())
    const inviter = await newUser()
    const invitee = await newUser()
    await db.transaction((trx) => welcomeInvitee(trx, invitee, inviter, { inviterCredit: '2', inviteeCredit: '1' }, cliActor()))
    const codes = await Promise.all(Array.from({ length: 10 }, () => oneCode('1')))
    const results = await all<unknown>(30, (i) =>
      i < 10 ? redeemCode(invitee.id, codes[i], portal(invitee.id)) : postLedgerEntry({ userRef: String(invitee.id), kind: 'topup', amount: '1' })
    )
    assert.deepEqual(results.filter((r) => r.status === 'rejected').map((r: any) => String(r.reason)), [])
    const rewards = await ledgerOf(inviter.id)
    assert.deepEqual(rewards.map((r) => r.amount), ['2.000000000000'])
    // 1 welcome + 30 top-ups of 1
    const mine = await ledgerOf(invitee.id)
    assert.lengthOf(mine, 31)
    const row = await db.from('users').where('id', invitee.id).select(db.raw('referral_reward::text AS reward')).first()
    assert.equal(row.reward, '2.000000000000')
    assert.deepEqual(await ledgerProblems(), [])
    assert.equal((await referralTerms()).inviterCredit, '2')
  })

  test('one sign-up sent 10 times at once through an invitation: one account, one welcome credit, the rest told the address is taken', async ({ assert }) => {
    await setReferralTerms({ inviterCredit: '2', inviteeCredit: '1' }, cliActor())
    const inviter = await newUser()
    const code = await referralCodeOf(inviter.id)
    const address = email()
    const results = await all(10, () => registerUser({ email: address, password: 'password123', referralCode: code }))
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1)
    for (const r of results) {
      if (r.status === 'rejected') {
        assert.instanceOf(r.reason, PortalInputError)
        assert.equal(r.reason.code, 'email_taken')
      }
    }
    const users = await db.from('users').where('email', address).select('id')
    assert.lengthOf(users, 1)
    assert.deepEqual((await ledgerOf(Number(users[0].id))).map((e) => e.amount), ['1.000000000000'])
    assert.lengthOf(await ledgerOf(inviter.id), 0)
    assert.deepEqual(await ledgerProblems(), [])
  })

  test('top-ups posted while the user\'s requests are metered: ledger sum = balance, each charge once', async ({ assert }) => {
    const user = await seedUser({ balance: '5' })
    const calls = all<unknown>(40, (i) =>
      i % 4 === 0
        ? postLedgerEntry({ userRef: String(user.userId), kind: i % 8 ? 'topup' : 'adjustment', amount: i % 8 ? '0.5' : '-0.25' })
        : post('/v1/chat/completions', { model: 'race-a', messages: [{ role: 'user', content: 'hi' }], max_tokens: 5, mock: { latency_ms: 20 } }, { authorization: `Bearer ${user.key}` }).then(
            async (r) => {
              await r.arrayBuffer()
              return r.status
            }
          )
    )
    const settled = await calls
    assert.deepEqual(settled.filter((r) => r.status === 'rejected'), [])
    assert.deepEqual(settled.filter((r, i) => i % 4 !== 0 && (r as any).value !== 200), [])
    const entries = await ledgerOf(user.userId)
    assert.equal(entries.filter((e) => e.kind === 'topup').length, 1 + 5)
    assert.equal(entries.filter((e) => e.kind === 'adjustment').length, 5)
    assert.equal(entries.filter((e) => e.kind === 'charge').length, 30)
    assert.deepEqual(await ledgerProblems(), [])
  })

  test('an operator\'s entry form sent twice at once (a double click) posts one entry and one audit row', async ({ assert }) => {
    const admin = await newUser('admin')
    const client = new PanelClient()
    await client.login(admin.email, 'password123')
    const user = await newUser()
    const page = await client.get(`/admin/users/${user.id}`)
    const form = formFields(page.html, `/admin/users/${user.id}/ledger`)
    const fields = { ...form, kind: 'topup', amount: '25', note: 'invoice 9' }
    const posted = await Promise.all([client.post(`/admin/users/${user.id}/ledger`, fields), client.post(`/admin/users/${user.id}/ledger`, fields)])
    assert.deepEqual(posted.map((p) => p.status), [302, 302])
    // Back and send again: nothing more, and the page says so.
    const resent = textOf((await client.follow(await client.post(`/admin/users/${user.id}/ledger`, fields))).html)
    assert.include(resent, 'This form was already sent, nothing added again: posted topup of $25')
    assert.deepEqual((await ledgerOf(user.id)).map((e) => e.amount), ['25.000000000000'])
    const audits = await db.from('audit_log').where('action', 'balance.topup').where('subject_id', user.id).count('* as n')
    assert.equal(Number(audits[0].n), 1)
    // The form shown again is a new entry: posting it adds money again.
    const again = formFields((await client.get(`/admin/users/${user.id}`)).html, `/admin/users/${user.id}/ledger`)
    await client.post(`/admin/users/${user.id}/ledger`, { ...again, kind: 'topup', amount: '25' })
    assert.lengthOf(await ledgerOf(user.id), 2)
    assert.deepEqual(await ledgerProblems(), [])
  })

  test('the management API: the same Idempotency-Key twice (a client retry) posts once and answers the same', async ({ assert }) => {
    const ops = await newUser('admin')
    const manager = await createApiKey({ userRef: ops.email, name: 'billing', manage: true })
    await refreshCaches()
    const user = await newUser()
    const headers = { 'authorization': `Bearer ${manager.key}`, 'idempotency-key': 'retry-1' }
    const answers = await Promise.all(Array.from({ length: 10 }, () => post(`/api/admin/users/${user.id}/ledger`, { kind: 'topup', amount: '3' }, headers)))
    assert.deepEqual([...new Set(answers.map((a) => a.status))], [201])
    const bodies: any[] = await Promise.all(answers.map((a) => a.json()))
    assert.deepEqual([...new Set(bodies.map((b) => b.balance))], ['3'])
    assert.lengthOf(await ledgerOf(user.id), 1)
    // Another key, or none, is another entry.
    await post(`/api/admin/users/${user.id}/ledger`, { kind: 'topup', amount: '3' }, { ...headers, 'idempotency-key': 'retry-2' })
    await post(`/api/admin/users/${user.id}/ledger`, { kind: 'topup', amount: '3' }, { authorization: headers.authorization })
    assert.lengthOf(await ledgerOf(user.id), 3)
    // The key in the body works the same.
    await post(`/api/admin/users/${user.id}/ledger`, { kind: 'topup', amount: '3', idempotency_key: 'retry-2' }, { authorization: headers.authorization })
    assert.lengthOf(await ledgerOf(user.id), 3)
    // The same key for another amount is refused, not silently answered with the first entry.
    const clash = await post(`/api/admin/users/${user.id}/ledger`, { kind: 'topup', amount: '4' }, headers)
    assert.equal(clash.status, 409)
    assert.lengthOf(await ledgerOf(user.id), 3)
    assert.deepEqual(await ledgerProblems(), [])
  })

  test('a refund adds money: a negative refund is refused like a negative top-up', async ({ assert }) => {
    const user = await newUser()
    await assert.rejects(() => postLedgerEntry({ userRef: String(user.id), kind: 'refund', amount: '-5' }), /positive/)
    assert.lengthOf(await ledgerOf(user.id), 0)
    await postLedgerEntry({ userRef: String(user.id), kind: 'adjustment', amount: '-5' })
    assert.deepEqual(await ledgerProblems(), [])
  })
})

/** The hidden fields of the form posting to `action` (the CSRF token, an idempotency key if any). */
function formFields(html: string, action: string): Record<string, string> {
  const start = html.indexOf(`action="${action}"`)
  const form = html.slice(start, html.indexOf('</form>', start))
  const fields: Record<string, string> = {}
  for (const m of form.matchAll(/<input[^>]*type="hidden"[^>]*>/g)) {
    const name = /name="([^"]+)"/.exec(m[0])?.[1]
    const value = /value="([^"]*)"/.exec(m[0])?.[1]
    if (name && name !== '_csrf') fields[name] = value ?? ''
  }
  return fields
}
