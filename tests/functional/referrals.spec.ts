import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import ace from '@adonisjs/core/services/ace'
import User from '#models/user'
import { createUser } from '#actions/create_user'
import { postLedgerEntry } from '#actions/post_ledger_entry'
import { createRedemptionCodes } from '#actions/create_redemption_codes'
import { redeemCode } from '#actions/redeem_code'
import { referralTerms, setReferralTerms } from '#actions/referrals'
import { cliActor } from '#actions/audit'
import { clearFormThrottles } from '#services/form_throttle'
import ReferralSet from '#commands/referral_set'
import { balanceAndLedger, resetDatabase } from '#tests/helpers'
import { PageClient, htmlText } from '#tests/page_client'
import { PanelClient } from '#tests/panel_client'

let mailbox = 0
const email = () => `ref${++mailbox}-${Date.now()}@test.local`
const portalActor = (id: number) => ({ id, label: `user ${id}`, source: 'portal' as const })

/** An inviter signed in to the portal, with the link Billing shows them. */
async function inviter() {
  const address = email()
  const { user } = await createUser({ email: address, password: 'password123' })
  const client = new PageClient()
  await client.login(address)
  const billing = await client.get('/dashboard/billing')
  const link = /data-referral-link>([^<]+)</.exec(billing.body)?.[1] ?? null
  return { user, client, billing, link, address }
}

/** Signs up through a link's `?ref=` the way a browser does: the form, then its POST with the hidden field. */
async function signUpWith(ref: string | null) {
  const client = new PageClient()
  const address = email()
  const page = await client.get(ref ? `/register?ref=${encodeURIComponent(ref)}` : '/register')
  const hidden = /name="ref" value="([^"]*)"/.exec(page.body)?.[1]
  const fields: Record<string, string> = { email: address, password: 'password123', password_confirmation: 'password123' }
  if (hidden !== undefined) fields.ref = hidden
  const result = await client.post('/register', fields)
  if (result.status !== 302) throw new Error(`register failed: ${result.status} ${result.body.slice(0, 300)}`)
  return { page, user: await User.findByOrFail('email', address) }
}

test.group('Referrals: invitation links and rewards', (group) => {
  group.each.setup(async () => {
    await resetDatabase()
    await db.from('app_settings').delete()
    await clearFormThrottles('127.0.0.1')
  })

  test('off by default: Billing offers no link, and a sign-up through one records the inviter but pays nobody', async ({ assert }) => {
    const { billing, user } = await inviter()
    assert.notInclude(billing.body, 'data-referrals')
    const code = (await db.from('users').where('id', user.id).first()).referral_code
    assert.isNull(code, 'no code is made while there is no program')
    await setReferralTerms({ inviterCredit: '0', inviteeCredit: '0' }, cliActor())
    assert.deepEqual(await referralTerms(), { inviterCredit: '0', inviteeCredit: '0' })
  })

  test('the link on Billing signs people up: welcome credit at once, the inviter paid once at the first top-up', async ({ assert }) => {
    await setReferralTerms({ inviterCredit: '2.5', inviteeCredit: '1' }, cliActor())
    const host = await inviter()
    assert.include(host.billing.body, 'data-referrals')
    assert.match(host.link!, /\/register\?ref=[A-Z2-9]{8}$/)
    const ref = new URL(host.link!).searchParams.get('ref')!

    const { page, user: invitee } = await signUpWith(ref.toLowerCase())
    assert.include(page.body, 'data-welcome-credit', 'the sign-up form says what the invitee gets')
    assert.equal((await db.from('users').where('id', invitee.id).first()).referred_by, host.user.id)
    assert.equal(Number((await balanceAndLedger(invitee.id)).balance), 1)
    assert.equal(Number((await balanceAndLedger(host.user.id)).balance), 0, 'a sign-up alone earns the inviter nothing')

    // The first money the invitee brings pays the inviter; racing top-ups pay once; later ones never again.
    const codes = (await createRedemptionCodes({ batch: 'ref', amount: '5', count: 2 })).codes.map((c) => c.code)
    await Promise.all([
      redeemCode(invitee.id, codes[0], portalActor(invitee.id)),
      redeemCode(invitee.id, codes[1], portalActor(invitee.id)),
      postLedgerEntry({ userRef: invitee.email, kind: 'topup', amount: '3' }),
    ])
    await postLedgerEntry({ userRef: invitee.email, kind: 'topup', amount: '4' })
    const host$ = await balanceAndLedger(host.user.id)
    assert.equal(Number(host$.balance), 2.5)
    assert.equal(host$.balance, host$.ledger)
    assert.equal(Number((await balanceAndLedger(invitee.id)).balance), 1 + 5 + 5 + 3 + 4, "the invitee's own money is untouched")

    const again = await host.client.get('/dashboard/billing')
    const text = htmlText(again.body)
    assert.include(text, 're…@test.local', 'the invitee is shown masked')
    assert.include(again.body, 'data-table="referrals"')
    assert.equal(/data-referral-link>([^<]+)</.exec(again.body)?.[1], host.link, 'the code stays the same')
  })

  test('refunds and adjustments are not a first top-up; an unknown code, or none, is no referral', async ({ assert }) => {
    await setReferralTerms({ inviterCredit: '2', inviteeCredit: '0' }, cliActor())
    const host = await inviter()
    const ref = new URL(host.link!).searchParams.get('ref')!
    const { page, user: invitee } = await signUpWith(ref)
    assert.notInclude(page.body, 'data-welcome-credit', 'no welcome credit offered')
    assert.equal(Number((await balanceAndLedger(invitee.id)).balance), 0)
    await postLedgerEntry({ userRef: invitee.email, kind: 'adjustment', amount: '1' })
    await postLedgerEntry({ userRef: invitee.email, kind: 'refund', amount: '1' })
    assert.equal(Number((await balanceAndLedger(host.user.id)).balance), 0)
    await postLedgerEntry({ userRef: invitee.email, kind: 'topup', amount: '10' })
    assert.equal(Number((await balanceAndLedger(host.user.id)).balance), 2)

    const stranger = await signUpWith('NOSUCHCD')
    assert.isNull((await db.from('users').where('id', stranger.user.id).first()).referred_by)
    const plain = await signUpWith(null)
    assert.isNull((await db.from('users').where('id', plain.user.id).first()).referred_by)
  })

  test('a disabled inviter is not paid', async ({ assert }) => {
    await setReferralTerms({ inviterCredit: '2', inviteeCredit: '0' }, cliActor())
    const host = await inviter()
    const { user: invitee } = await signUpWith(new URL(host.link!).searchParams.get('ref')!)
    await db.from('users').where('id', host.user.id).update({ disabled_at: new Date() })
    await postLedgerEntry({ userRef: invitee.email, kind: 'topup', amount: '10' })
    assert.equal(Number((await balanceAndLedger(host.user.id)).balance), 0)
    const row = await db.from('users').where('id', invitee.id).first()
    assert.isNotNull(row.referral_rewarded_at)
    assert.equal(Number(row.referral_reward), 0)
  })

  test('operators set the rewards on the Plans page or with referral:set; bad amounts are refused', async ({ assert }) => {
    const adminEmail = email()
    await createUser({ email: adminEmail, password: 'password123', role: 'admin' })
    const panel = new PanelClient()
    await panel.login(adminEmail, 'password123')
    const plans = await panel.get('/admin/settings')
    assert.include(plans.html, 'data-referral-form')
    const saved = await panel.post('/admin/settings/referrals', { inviterCredit: '3', inviteeCredit: '0.5' })
    assert.equal(saved.status, 302)
    assert.deepEqual(await referralTerms(), { inviterCredit: '3', inviteeCredit: '0.5' })
    const refused = await panel.post('/admin/settings/referrals', { inviterCredit: '-1', inviteeCredit: '0' })
    assert.equal(refused.status, 302)
    assert.deepEqual(await referralTerms(), { inviterCredit: '3', inviteeCredit: '0.5' }, 'unchanged')
    const audit = await db.from('audit_log').where('action', 'settings.referrals').count('* as n').first()
    assert.equal(Number(audit.n), 1)

    const command = await ace.create(ReferralSet, ['--inviter', '1.25'])
    await command.exec()
    assert.equal(command.exitCode, 0)
    assert.deepEqual(await referralTerms(), { inviterCredit: '1.25', inviteeCredit: '0.5' })
    const bad = await ace.create(ReferralSet, ['--invitee', '5000'])
    await bad.exec()
    assert.equal(bad.exitCode, 1)
  })

  test("the admin's user page says who invited whom", async ({ assert }) => {
    await setReferralTerms({ inviterCredit: '2', inviteeCredit: '0' }, cliActor())
    const host = await inviter()
    const { user: invitee } = await signUpWith(new URL(host.link!).searchParams.get('ref')!)
    await postLedgerEntry({ userRef: invitee.email, kind: 'topup', amount: '10' })
    const adminEmail = email()
    await createUser({ email: adminEmail, password: 'password123', role: 'admin' })
    const panel = new PanelClient()
    await panel.login(adminEmail, 'password123')
    const inviteePage = await panel.get(`/admin/users/${invitee.id}`)
    assert.include(inviteePage.html, `Invited by <a href="/admin/users/${host.user.id}">${host.address}</a>`)
    const hostPage = await panel.get(`/admin/users/${host.user.id}`)
    assert.match(hostPage.html, /Invited 1 user, earned \$2/)
  })
})
