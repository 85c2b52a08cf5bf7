import { test } from '@japa/runner'
import { postLedgerEntry } from '#actions/post_ledger_entry'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { balanceAndLedger, post, resetDatabase, seedChannel, seedPrice, seedUser, startMock } from '#tests/helpers'
import { PageClient } from '#tests/page_client'

test.group('Portal: the ledger as CSV', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'mock', baseUrl: mock.url, models: ['csv-model'] })
    await seedPrice('csv-model', '50', '80')
    return () => mock.stop()
  })

  test('every top-up and adjustment, charges per day, exact amounts that add up to the balance', async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    await postLedgerEntry({ userRef: user.email, kind: 'adjustment', amount: '-0.25', note: 'goodwill, "fixed"' })
    for (let i = 0; i < 3; i++) {
      await post('/v1/chat/completions', { model: 'csv-model', messages: [{ role: 'user', content: 'hi' }] }, { authorization: `Bearer ${user.key}` })
    }
    const client = new PageClient()
    await client.login(user.email)
    const page = await client.get('/dashboard/billing')
    assert.include(page.body, 'href="/dashboard/billing.csv"')
    const csv = await client.get('/dashboard/billing.csv')
    assert.equal(csv.status, 200)
    assert.match(csv.headers.get('content-type')!, /^text\/csv/)
    assert.match(csv.headers.get('content-disposition')!, /attachment; filename="ledger-\d{4}-\d{2}-\d{2}\.csv"/)
    const lines = csv.body.trim().split('\r\n')
    assert.equal(lines[0], 'date,kind,requests,note,amount_usd')
    const charge = lines.find((l) => l.includes(',charge,'))!
    assert.match(charge, /^\d{4}-\d{2}-\d{2},charge,3,,-0\.003000000000$/)
    assert.include(csv.body, 'adjustment,,"goodwill, ""fixed""",-0.250000000000')
    const total = lines.slice(1).reduce((sum, line) => sum + Number(line.split(',').at(-1)), 0)
    assert.closeTo(total, Number((await balanceAndLedger(user.userId)).balance), 1e-9)

    const other = await seedUser({ balance: '1' })
    const otherClient = new PageClient()
    await otherClient.login(other.email)
    assert.notInclude((await otherClient.get('/dashboard/billing.csv')).body, 'goodwill')
    assert.equal((await new PageClient().get('/dashboard/billing.csv')).status, 302, 'signed out: to /login')
  })
})
