import { test } from '@japa/runner'
import ace from '@adonisjs/core/services/ace'
import db from '@adonisjs/lucid/services/db'
import { createUser } from '#actions/create_user'
import { createRedemptionCodes } from '#actions/create_redemption_codes'
import { redeemCode } from '#actions/redeem_code'
import { PortalInputError } from '#actions/portal_input_error'
import { clearFormThrottles } from '#services/form_throttle'
import RedeemCreate from '#commands/redeem_create'
import RedeemDisable from '#commands/redeem_disable'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { balanceAndLedger, post, resetDatabase, seedChannel, seedPrice, seedUser, startMock } from '#tests/helpers'
import { PageClient, htmlText } from '#tests/page_client'
import { PanelClient, textOf } from '#tests/panel_client'

const portalActor = (id: number) => ({ id, label: `user ${id}`, source: 'portal' as const })

async function batchOf(count: number, amount = '5', extra: { batch?: string; expiresInDays?: number } = {}) {
  const made = await createRedemptionCodes({ batch: extra.batch ?? 'test-batch', amount, count, expiresInDays: extra.expiresInDays })
  return made.codes.map((c) => c.code)
}

/** A signed-in portal user with a key and no money. */
async function portalUser() {
  const seeded = await seedUser()
  await clearFormThrottles('127.0.0.1', [seeded.userId])
  const client = new PageClient()
  await client.login(seeded.email)
  await client.get('/dashboard/billing')
  return { ...seeded, client }
}

async function redeemOnPage(client: PageClient, code: string) {
  const posted = await client.post('/dashboard/billing/redeem', { code })
  const page = await client.get('/dashboard/billing')
  return { posted, page, text: htmlText(page.body) }
}

async function run(command: any, args: string[]) {
  const instance = await ace.create(command, args)
  ace.ui.switchMode('raw')
  await instance.exec()
  return instance
}

test.group('Redemption codes: users redeem prepaid codes', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock({ text: 'paid answer' })
    await seedChannel({ name: 'mock', baseUrl: mock.url, models: ['paid-model'] })
    await seedPrice('paid-model', '1', '2')
    return () => mock.stop()
  })

  test('a batch keeps only hashes; each code is shown once in the GW-XXXX-... form', async ({ assert }) => {
    const codes = await batchOf(3, '2.5', { batch: 'hash-check' })
    assert.lengthOf(new Set(codes), 3)
    for (const code of codes) assert.match(code, /^GW(-[0-9A-HJKMNP-TV-Z]{4}){5}$/)
    const rows = await db.from('redemption_codes').where('batch', 'hash-check')
    assert.lengthOf(rows, 3)
    const stored = JSON.stringify(rows)
    for (const code of codes) {
      assert.notInclude(stored, code.slice(3))
      assert.notInclude(stored, code.replace(/-/g, '').slice(2))
    }
    for (const row of rows) {
      assert.lengthOf(row.code_hash, 64)
      assert.equal(row.amount, '2.500000000000')
      assert.isNull(row.redeemed_at)
    }
    const audit = await db.from('audit_log').where('action', 'redemption.create').orderBy('id', 'desc').first()
    assert.include(audit.summary, '3 redemption codes of $2.5 in batch "hash-check"')
  })

  test('redeeming on the billing page tops up the balance once, and the API serves the user at once', async ({ assert }) => {
    const user = await portalUser()
    const refused = await post('/v1/chat/completions', { model: 'paid-model', messages: [{ role: 'user', content: 'hi' }] }, { authorization: `Bearer ${user.key}` })
    assert.equal(refused.status, 402)

    const [code] = await batchOf(1, '7.25')
    const { posted, text } = await redeemOnPage(user.client, code)
    assert.equal(posted.status, 302)
    assert.equal(posted.location, '/dashboard/billing')
    assert.include(text, '$7.25 was added to your balance')
    assert.include(text, 'Redemption code')

    const money = await balanceAndLedger(user.userId)
    assert.equal(Number(money.balance), 7.25)
    const entries = await db.from('balance_ledger').where('user_id', user.userId)
    assert.lengthOf(entries, 1)
    assert.equal(entries[0].kind, 'topup')
    assert.match(entries[0].note, /^Redemption code [0-9A-Z]{4}…[0-9A-Z]{4}$/)
    const row = await db.from('redemption_codes').where('ledger_entry_id', entries[0].id).first()
    assert.equal(Number(row.redeemed_by), user.userId)
    assert.isNotNull(row.redeemed_at)

    // No cache refresh by the test: the ledger's NOTIFY reaches the gateway's cached balance.
    let status = 0
    for (let i = 0; i < 40 && status !== 200; i++) {
      const answer = await post('/v1/chat/completions', { model: 'paid-model', messages: [{ role: 'user', content: 'hi' }] }, { authorization: `Bearer ${user.key}` })
      status = answer.status
      if (status !== 200) await new Promise((r) => setTimeout(r, 50))
    }
    assert.equal(status, 200)

    const audit = await db.from('audit_log').where('action', 'redemption.redeem').where('subject_id', user.userId).first()
    assert.equal(audit.source, 'portal')
    assert.include(audit.summary, '+7.25 USD')
  })

  test('a code is redeemed once: the same user and another user are told why, nothing moves', async ({ assert }) => {
    const first = await portalUser()
    const second = await portalUser()
    const [code] = await batchOf(1, '3')
    await redeemOnPage(first.client, code)
    const again = await redeemOnPage(first.client, code)
    assert.include(again.text, 'You have already redeemed this code')
    const other = await redeemOnPage(second.client, code)
    assert.include(other.text, 'This code has already been redeemed.')
    assert.equal(Number((await balanceAndLedger(first.userId)).balance), 3)
    assert.equal(Number((await balanceAndLedger(second.userId)).balance), 0)
    assert.lengthOf(await db.from('balance_ledger').where('kind', 'topup').whereIn('user_id', [first.userId, second.userId]), 1)
  })

  test('twenty users racing for one code: exactly one top-up', async ({ assert }) => {
    const users = await Promise.all(
      Array.from({ length: 20 }, (_, i) => createUser({ email: `racer${i}-${Date.now()}@test.local`, password: 'password123' }))
    )
    const [code] = await batchOf(1, '11')
    const outcomes = await Promise.allSettled(users.map(({ user }) => redeemCode(user.id, code, portalActor(user.id))))
    const won = outcomes.filter((o) => o.status === 'fulfilled')
    assert.lengthOf(won, 1)
    for (const o of outcomes) {
      if (o.status === 'rejected') {
        assert.instanceOf(o.reason, PortalInputError)
        assert.equal(o.reason.code, 'redeem_used')
      }
    }
    const ids = users.map(({ user }) => user.id)
    const credited = await db.from('balance_ledger').whereIn('user_id', ids).sum('amount as total').first()
    assert.equal(Number(credited.total), 11)
    const balances = await db.from('users').whereIn('id', ids).sum('balance as total').first()
    assert.equal(Number(balances.total), 11)
  })

  test('what people type is read leniently: case, spaces, no tag, O for 0 and I/L for 1', async ({ assert }) => {
    const user = await portalUser()
    const codes = await batchOf(3, '1')
    const spaced = codes[0].toLowerCase().replace(/-/g, ' ')
    const untagged = codes[1].slice(3)
    // The alphabet has no O, I or L: a reader who sees 0 as O, 1 as I or L still gets in.
    const misread = codes[2].replace(/0/g, 'O').replace(/1/g, 'l')
    for (const typed of [spaced, untagged, `  ${misread}  `]) {
      const result = await redeemCode(user.userId, typed, portalActor(user.userId))
      assert.equal(Number(result.amount), 1)
    }
    assert.equal(Number((await balanceAndLedger(user.userId)).balance), 3)
  })

  test('malformed, unknown, expired and disabled codes are refused with their reason', async ({ assert }) => {
    const user = await portalUser()
    const [expired, disabled] = await batchOf(2, '4', { batch: 'refusals' })
    const hashes = await db.from('redemption_codes').where('batch', 'refusals').orderBy('id')
    await db.from('redemption_codes').where('id', hashes[0].id).update({ expires_at: new Date(Date.now() - 1000) })
    await db.from('redemption_codes').where('id', hashes[1].id).update({ disabled_at: new Date() })

    assert.include((await redeemOnPage(user.client, 'hello')).text, 'This is not a redemption code')
    assert.include((await redeemOnPage(user.client, 'GW-0000-0000-0000-0000-0000')).text, 'No such code')
    assert.include((await redeemOnPage(user.client, expired)).text, 'This code has expired.')
    assert.include((await redeemOnPage(user.client, disabled)).text, 'This code was disabled by an administrator.')
    assert.equal(Number((await balanceAndLedger(user.userId)).balance), 0)
    const rows = await db.from('redemption_codes').where('batch', 'refusals').whereNotNull('redeemed_at')
    assert.lengthOf(rows, 0)
  })

  test('an empty code gets a labelled validation error; a POST without the CSRF token redeems nothing', async ({ assert }) => {
    const user = await portalUser()
    const empty = await redeemOnPage(user.client, '')
    assert.include(empty.text, 'Code is required')
    const [code] = await batchOf(1, '9')
    await user.client.get('/dashboard/billing')
    const forged = await user.client.post('/dashboard/billing/redeem', { code }, { csrf: false })
    assert.notEqual(forged.location, '/dashboard/billing')
    assert.equal(Number((await balanceAndLedger(user.userId)).balance), 0)
  })

  test('guessing is throttled: after 5 wrong codes even a good one waits', async ({ assert }) => {
    const user = await portalUser()
    const [good] = await batchOf(1, '2')
    for (let i = 0; i < 5; i++) {
      const attempt = await redeemOnPage(user.client, `GW-AAAA-AAAA-AAAA-AAAA-AAA${i}`)
      assert.include(attempt.text, 'No such code')
    }
    const held = await redeemOnPage(user.client, good)
    assert.isAbove(Number(held.posted.headers.get('retry-after')), 0)
    assert.include(held.text, 'Too many attempts')
    assert.equal(Number((await balanceAndLedger(user.userId)).balance), 0)

    // Valid codes in a row are never held: only failures count.
    const other = await portalUser()
    for (const code of await batchOf(7, '1')) {
      assert.include((await redeemOnPage(other.client, code)).text, 'was added to your balance')
    }
    assert.equal(Number((await balanceAndLedger(other.userId)).balance), 7)
  })

  test('the page is in the visitor\'s language', async ({ assert }) => {
    const user = await portalUser()
    const client = new PageClient({ 'accept-language': 'vi' })
    await client.login(user.email)
    await client.get('/dashboard/billing')
    const [code] = await batchOf(1, '6')
    const { text } = await redeemOnPage(client, code)
    assert.include(text, 'vào số dư của bạn')
    const again = await redeemOnPage(client, code)
    assert.include(again.text, 'Bạn đã dùng mã này rồi')
  })
})

test.group('Redemption codes: the admin panel and ace', (group) => {
  let admin: PanelClient

  group.setup(async () => {
    await resetDatabase()
    await createUser({ email: 'codes-admin@test.local', password: 'password123', role: 'admin' })
  })

  group.each.setup(async () => {
    admin = new PanelClient()
    await admin.login('codes-admin@test.local', 'password123')
  })

  /** Opens the new-batch form; its token, which makes one batch */
  async function newBatchForm() {
    const form = await admin.get('/admin/redemptions/new')
    return /name="formToken" value="([^"]+)"/.exec(form.html)![1]
  }

  test('an admin makes a batch, sees the codes once, finds and disables them', async ({ assert }) => {
    const formToken = await newBatchForm()
    const form = { formToken, batch: 'panel-batch', perCode: '10', count: '3', expiresInDays: '30' }
    const made = await admin.post('/admin/redemptions', form)
    assert.equal(made.status, 200)
    assert.equal(made.headers.get('cache-control'), 'no-store')
    const codes = /<textarea[^>]*data-codes[^>]*>([^<]*)<\/textarea>/.exec(made.html)![1].trim().split('\n')
    assert.lengthOf(codes, 3)
    assert.include(textOf(made.html), 'not be shown again')

    // A refresh of the codes page sends the same form again: nothing more is made, and the list says why.
    const again = await admin.post('/admin/redemptions', form)
    assert.equal(again.status, 302)
    assert.equal(again.location, '/admin/redemptions')
    assert.include(textOf((await admin.follow(again)).html), 'Nothing made: this form had made its batch already')
    assert.lengthOf(await db.from('redemption_codes').where('batch', 'panel-batch'), 3)
    const audits = await db.from('audit_log').where('action', 'redemption.create').whereRaw(`after->>'batch' = ?`, ['panel-batch'])
    assert.lengthOf(audits, 1)

    const index = await admin.get('/admin/redemptions')
    assert.equal(index.status, 200)
    assert.notInclude(index.html, codes[0], 'the list shows hints, never the code')
    const batchRow = /<tr data-batch="panel-batch">([\s\S]*?)<\/tr>/.exec(index.html)![1]
    assert.include(textOf(batchRow), '$30.00', 'unused value')

    // A customer quotes a whole code (typed loosely): the page finds it.
    const found = await admin.get(`/admin/redemptions?q=${encodeURIComponent(codes[1].toLowerCase())}`)
    assert.lengthOf([...found.html.matchAll(/<tr data-code="/g)], 1)

    const user = await seedUser()
    await redeemCode(user.userId, codes[0], portalActor(user.userId))
    const oneId = (await db.from('redemption_codes').where('batch', 'panel-batch').whereNull('redeemed_at').orderBy('id').first()).id
    await admin.get('/admin/redemptions')
    const disabledOne = await admin.post(`/admin/redemptions/${oneId}/disable`)
    assert.equal(disabledOne.status, 302)
    await assert.rejects(() => redeemCode(user.userId, codes[1], portalActor(user.userId)))

    await admin.get('/admin/redemptions')
    await admin.post('/admin/redemptions/disable-batch', { batch: 'panel-batch' })
    const rows = await db.from('redemption_codes').where('batch', 'panel-batch').orderBy('id')
    assert.deepEqual(
      rows.map((r) => [r.redeemed_at !== null, r.disabled_at !== null]),
      [[true, false], [false, true], [false, true]],
      'the redeemed code stays redeemed'
    )
    const page = await admin.get('/admin/redemptions?status=redeemed')
    assert.include(textOf(page.html), user.email)
    assert.lengthOf([...page.html.matchAll(/<tr data-code="/g)], 1)
    const actions = (await db.from('audit_log').where('action', 'like', 'redemption.%').orderBy('id')).map((r) => r.action)
    assert.includeMembers(actions, ['redemption.create', 'redemption.redeem', 'redemption.disable'])
  })

  test('the form refuses bad input beside the fields and makes nothing', async ({ assert }) => {
    const formToken = await newBatchForm()
    const refused = await admin.post('/admin/redemptions', { formToken, batch: '', perCode: 'ten', count: '0' })
    assert.equal(refused.status, 302)
    const form = await admin.follow(refused)
    const text = textOf(form.html)
    assert.include(text, 'Batch name is required')
    assert.include(text, 'Amount per code must be an amount in USD')
    assert.include(text, 'Number of codes must be at least 1')
    // A refused form can be corrected and sent again: its token is spent only by a batch made.
    const zero = await admin.post('/admin/redemptions', { formToken, batch: 'zero', perCode: '0.00', count: '1' })
    assert.include(textOf((await admin.follow(zero)).html), 'The amount per code must be more than zero')
    assert.lengthOf(await db.from('redemption_codes').whereIn('batch', ['', 'zero']), 0)
  })

  test('a user cannot reach the codes pages', async ({ assert }) => {
    const user = await seedUser()
    const client = new PanelClient()
    await client.login(user.email, 'password123')
    const page = await client.get('/admin/redemptions')
    assert.notEqual(page.status, 200)
    const made = await client.post('/admin/redemptions', { batch: 'sneaky', perCode: '100', count: '1' })
    assert.notEqual(made.status, 200)
    assert.lengthOf(await db.from('redemption_codes').where('batch', 'sneaky'), 0)
  })

  test('redeem:create prints the codes one per line; redeem:disable --batch disables the unused', async ({ assert }) => {
    const lines: string[] = []
    const original = console.log
    console.log = (...args: any[]) => lines.push(args.join(' '))
    try {
      ;(await run(RedeemCreate, ['--batch', 'cli-batch', '--per-code', '2.50', '--count', '4', '--expires-in-days', '7'])).assertSucceeded()
    } finally {
      console.log = original
    }
    const codes = lines.join('\n').trim().split('\n')
    assert.lengthOf(codes, 4)
    const user = await seedUser()
    await redeemCode(user.userId, codes[3], portalActor(user.userId))
    assert.equal(Number((await balanceAndLedger(user.userId)).balance), 2.5)

    ;(await run(RedeemDisable, ['--batch', 'cli-batch'])).assertSucceeded()
    const rows = await db.from('redemption_codes').where('batch', 'cli-batch')
    assert.lengthOf(rows.filter((r) => r.disabled_at !== null), 3)
    const bad = await run(RedeemCreate, ['--batch', 'x', '--per-code', '-1', '--count', '5000'])
    assert.equal(bad.exitCode, 1)
    assert.lengthOf(await db.from('redemption_codes').where('batch', 'x'), 0)
  })
})
