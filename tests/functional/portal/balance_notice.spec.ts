import { test } from '@japa/runner'
import { postLedgerEntry } from '#actions/post_ledger_entry'
import { resetDatabase, seedUser } from '#tests/helpers'
import { PageClient, htmlText } from '#tests/page_client'

test.group('Portal: an empty balance is said on every page', (group) => {
  group.setup(async () => {
    await resetDatabase()
  })

  test('with no money every portal page but Billing says so and links to Billing; a top-up clears it', async ({ assert }) => {
    const user = await seedUser()
    const client = new PageClient()
    await client.login(user.email)
    for (const path of ['/dashboard', '/dashboard/keys', '/dashboard/usage', '/dashboard/models', '/dashboard/playground']) {
      const page = await client.get(path)
      assert.include(page.body, 'data-balance-empty', path)
      assert.include(htmlText(page.body), 'Your balance is $0.00: requests to priced models are refused (402 insufficient_balance)', path)
    }
    assert.notInclude((await client.get('/dashboard/billing')).body, 'data-balance-empty', 'Billing shows the balance itself')

    const vi = new PageClient({ 'accept-language': 'vi' })
    await vi.login(user.email)
    assert.include(htmlText((await vi.get('/dashboard')).body), 'Nạp tiền ở trang Thanh toán')

    await postLedgerEntry({ userRef: user.email, kind: 'topup', amount: '3' })
    assert.notInclude((await client.get('/dashboard')).body, 'data-balance-empty')
  })
})
