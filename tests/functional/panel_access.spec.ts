import { test } from '@japa/runner'
import { createUser } from '#actions/create_user'
import { resetDatabase } from '#tests/helpers'
import { PanelClient, textOf } from '#tests/panel_client'

async function seedAccounts() {
  await resetDatabase()
  const stamp = Date.now()
  const admin = `admin-${stamp}@test.local`
  const user = `user-${stamp}@test.local`
  await createUser({ email: admin, password: 'admin-password', role: 'admin' })
  await createUser({ email: user, password: 'user-password', role: 'user' })
  return { admin, user }
}

test.group('Panel access', (group) => {
  let accounts: { admin: string; user: string }
  group.each.setup(async () => {
    accounts = await seedAccounts()
  })

  test('an anonymous visitor is sent to /login and back to the page after it', async ({ assert }) => {
    const client = new PanelClient()
    const first = await client.get('/admin?view=x')
    assert.equal(first.status, 302)
    assert.equal(first.location, '/login')
    const page = await client.get('/login')
    assert.equal(page.status, 200)
    assert.match(page.html, /name=['"]_csrf['"]/)
    const login = await client.post('/login', { email: accounts.admin, password: 'admin-password' })
    assert.equal(login.status, 302)
    assert.equal(login.location, '/admin?view=x')
  })

  test('login sends an admin to /admin and a user to /dashboard; a user gets 403 in /admin', async ({ assert }) => {
    const admin = new PanelClient()
    assert.equal((await admin.login(accounts.admin, 'admin-password')).location, '/admin')
    const dashboard = await admin.get('/admin')
    assert.equal(dashboard.status, 200)
    assert.include(textOf(dashboard.html), 'Dashboard')

    const user = new PanelClient()
    assert.equal((await user.login(accounts.user, 'user-password')).location, '/dashboard')
    const forbidden = await user.get('/admin')
    assert.equal(forbidden.status, 403)
    assert.include(textOf(forbidden.html), 'Not allowed')
    // Signed in: /login goes home instead of showing the form.
    assert.equal((await user.get('/login')).location, '/dashboard')
  })

  test('a wrong password shows an error and keeps the email, never the password', async ({ assert }) => {
    const client = new PanelClient()
    const result = await client.login(accounts.admin, 'wrong-password')
    assert.equal(result.status, 302)
    const page = await client.follow(result)
    assert.include(textOf(page.html), 'Invalid email or password')
    assert.include(page.html, `value="${accounts.admin}"`)
    assert.notInclude(page.html, 'wrong-password')
  })

  test('a form without the CSRF token is refused', async ({ assert }) => {
    const client = new PanelClient()
    await client.get('/login')
    const result = await client.post('/login', { email: accounts.admin, password: 'admin-password' }, { csrf: false })
    // Shield answers a bad token with a redirect back and no session.
    assert.equal(result.status, 302)
    assert.notEqual(result.location, '/admin')
    assert.equal((await client.get('/admin')).location, '/login')
  })

  test('login is throttled per email after 5 failures, with the wait in the message', async ({ assert }) => {
    const client = new PanelClient()
    for (let i = 0; i < 5; i++) await client.login(accounts.admin, `nope-${i}`)
    const blocked = await client.login(accounts.admin, 'admin-password')
    assert.notEqual(blocked.location, '/admin')
    const page = await client.follow(blocked)
    assert.match(textOf(page.html), /Too many login attempts\. Try again in \d+ minutes?/)
    // Another email from the same IP still works (the IP budget is larger).
    const other = new PanelClient()
    assert.equal((await other.login(accounts.user, 'user-password')).location, '/dashboard')
  })

  test('logout ends the session', async ({ assert }) => {
    const client = new PanelClient()
    await client.login(accounts.admin, 'admin-password')
    await client.get('/admin')
    const out = await client.post('/logout')
    assert.equal(out.location, '/login')
    assert.equal((await client.get('/admin')).location, '/login')
  })

  test('the session cookie is httpOnly and SameSite=Lax; assets are served by the app', async ({ assert }) => {
    const response = await fetch(`http://${process.env.HOST}:${process.env.PORT}/login`)
    const cookie = response.headers.getSetCookie().join('\n')
    assert.match(cookie, /gateway-session=.*HttpOnly/i)
    assert.match(cookie, /SameSite=Lax/i)
    const css = await fetch(`http://${process.env.HOST}:${process.env.PORT}/assets/pico.min.css`)
    assert.equal(css.status, 200)
    assert.include(css.headers.get('content-type') ?? '', 'text/css')
    const missing = await fetch(`http://${process.env.HOST}:${process.env.PORT}/assets/..%2Fpackage.json`)
    assert.equal(missing.status, 404)
  })
})

test.group('Panel not-found pages', (group) => {
  group.each.setup(async () => {
    await resetDatabase()
  })

  test('an id that does not exist gets a 404 page, not a stack trace', async ({ assert }) => {
    await createUser({ email: 'nf-admin@test.local', password: 'admin-password', role: 'admin' })
    const client = new PanelClient()
    await client.login('nf-admin@test.local', 'admin-password')
    for (const path of ['/admin/users/999', '/admin/keys/999', '/admin/channels/999', '/admin/plans/999/edit', '/admin/usage/999']) {
      const page = await client.get(path)
      assert.equal(page.status, 404, path)
      assert.include(textOf(page.html), 'Page not found', path)
    }
  })
})
