import { test } from '@japa/runner'
import { createUser } from '#actions/create_user'
import { clearLoginThrottles } from '#services/login_throttle'
import { clearFormThrottles } from '#services/form_throttle'
import { resetDatabase, seedUser } from '#tests/helpers'
import { PanelClient, textOf } from '#tests/panel_client'

/**
 * Sessions are kept in the signed cookie, so a password change has to end
 * the account's other sessions some other way: the account's session epoch
 * (app/services/session_epoch.ts).
 */
async function signedIn(email: string, password: string) {
  const client = new PanelClient()
  const result = await client.login(email, password)
  if (result.status !== 302) throw new Error(`login of ${email} failed: ${result.status}`)
  return client
}

test.group('Sessions after a password change', (group) => {
  group.setup(async () => {
    await resetDatabase()
  })
  group.each.setup(async () => {
    await clearLoginThrottles('127.0.0.1')
  })

  test("changing the password keeps this session and ends the account's other sessions", async ({ assert }) => {
    const user = await seedUser()
    await clearFormThrottles('127.0.0.1', [user.userId])
    const here = await signedIn(user.email, 'password123')
    const elsewhere = await signedIn(user.email, 'password123')
    assert.equal((await elsewhere.get('/dashboard')).status, 200)

    await here.get('/dashboard/password')
    const changed = await here.post('/dashboard/password', { current_password: 'password123', password: 'newpassword1', password_confirmation: 'newpassword1' })
    assert.equal(changed.location, '/dashboard/password')
    const told = await here.follow(changed)
    assert.include(textOf(told.html), 'Your other sessions (other browsers and devices) are signed out.')
    assert.equal((await here.get('/dashboard')).status, 200, 'the session that changed it stays signed in')

    const gone = await elsewhere.get('/dashboard/keys')
    assert.equal(gone.status, 302)
    assert.equal(gone.location, '/login')
    const login = await elsewhere.follow(gone)
    assert.include(textOf(login.html), 'The password of this account was changed: sign in again.')
    // Signed out for good (not only redirected once), and a POST is refused the same way.
    assert.equal((await elsewhere.get('/dashboard')).location, '/login')
    assert.equal((await elsewhere.post('/dashboard/password', { current_password: 'newpassword1', password: 'x', password_confirmation: 'x' })).location, '/login')

    // Signing in again with the new password works, and stays.
    const again = await signedIn(user.email, 'newpassword1')
    assert.equal((await again.get('/dashboard')).status, 200)
    assert.equal((await again.get('/dashboard')).status, 200)
  })

  test("an administrator's password reset ends the user's sessions, and the public pages see it too", async ({ assert }) => {
    await createUser({ email: 'epoch-admin@test.local', password: 'admin-password', role: 'admin' })
    const user = await seedUser()
    const admin = await signedIn('epoch-admin@test.local', 'admin-password')
    const session = await signedIn(user.email, 'password123')
    assert.include((await session.get('/docs')).html, user.email)

    await admin.get(`/admin/users/${user.userId}`)
    const saved = await admin.post(`/admin/users/${user.userId}`, { role: 'user', planId: '', disabled: '0', password: 'reset-password-1' })
    assert.equal(saved.status, 302)

    assert.notInclude((await session.get('/docs')).html, user.email, 'the public page no longer shows the account')
    assert.equal((await session.get('/dashboard')).location, '/login')
    // The admin's own session was not touched by editing someone else.
    assert.equal((await admin.get('/admin/users')).status, 200)
    assert.equal((await signedIn(user.email, 'reset-password-1').then((c) => c.get('/dashboard'))).status, 200)
  })

  test('an edit without a new password leaves the sessions alone', async ({ assert }) => {
    await createUser({ email: 'epoch-admin2@test.local', password: 'admin-password', role: 'admin' })
    const user = await seedUser()
    const admin = await signedIn('epoch-admin2@test.local', 'admin-password')
    const session = await signedIn(user.email, 'password123')
    await admin.get(`/admin/users/${user.userId}`)
    await admin.post(`/admin/users/${user.userId}`, { role: 'user', planId: '', disabled: '0' })
    assert.equal((await session.get('/dashboard')).status, 200)
  })
})
