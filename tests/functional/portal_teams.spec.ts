import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import ApiKey from '#models/api_key'
import { addTeamMembers, createTeam, setKeyTeam, type TeamRow } from '#actions/teams'
import { formatMoney } from '#services/format'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { post, refreshCaches, resetDatabase, seedChannel, seedPrice, seedUser, startMock, type SeededUser } from '#tests/helpers'
import { PageClient, htmlText } from '#tests/page_client'

/**
 * The portal's Teams page: a member (or the owner of a key in a team) sees the
 * team's budget and totals and only their own keys in it; another team's id
 * is 404; the nav shows Teams only to a user in one; a key goes into a team
 * from the portal only when its owner is that team's admin.
 */
async function chat(key: string) {
  const response = await post('/v1/chat/completions', { model: 'team-model', messages: [{ role: 'user', content: 'hi' }] }, { authorization: `Bearer ${key}` })
  await response.text()
  return response.status
}

async function named(user: SeededUser, name: string) {
  await db.from('api_keys').where('id', user.keyId).update({ name })
  return (await ApiKey.findOrFail(user.keyId)).masked
}

async function signedIn(user: SeededUser) {
  const client = new PageClient()
  await client.login(user.email)
  return client
}

const navLink = (body: string) => body.includes('href="/dashboard/teams"')

test.group('Portal: teams', (group) => {
  let mock: MockUpstream
  let team: TeamRow
  let other: TeamRow
  let admin: SeededUser
  let member: SeededUser
  let keyOwner: SeededUser
  let outsider: SeededUser

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'mock', baseUrl: mock.url, models: ['*'] })
    // 12 prompt and 5 completion tokens a call (the mock's usage): $0.022 a call.
    await seedPrice('team-model', '1000', '2000')
    admin = await seedUser({ balance: '10' })
    member = await seedUser({ balance: '10' })
    keyOwner = await seedUser({ balance: '10' })
    outsider = await seedUser({ balance: '10' })
    team = await createTeam({ alias: 'research-crew', maxBudget: '5', budgetPeriod: 'month', models: ['team-*'], rpm: 600, tpm: 90000 })
    other = await createTeam({ alias: 'hidden-squad' })
    await addTeamMembers(team.id, [{ user: admin.email, role: 'admin' }, { user: member.email, role: 'user' }])
    await addTeamMembers(other.id, [{ user: outsider.email, role: 'admin' }])
    for (const user of [admin, member, keyOwner]) await setKeyTeam(String(user.keyId), team.id)
    await setKeyTeam(String(outsider.keyId), other.id)
    await refreshCaches()
    return () => mock.stop()
  })

  test('a member sees the team totals and only their own keys in it', async ({ assert }) => {
    const adminMasked = await named(admin, 'admin-laptop')
    const memberMasked = await named(member, 'members-secret-bot')
    assert.equal(await chat(admin.key), 200)
    assert.equal(await chat(member.key), 200)
    assert.equal(await chat(member.key), 200)
    const client = await signedIn(admin)

    const index = await client.get('/dashboard/teams')
    assert.equal(index.status, 200)
    const indexText = htmlText(index.body)
    assert.include(indexText, 'research-crew')
    assert.include(indexText, 'Team admin')
    assert.notInclude(indexText, 'hidden-squad')

    const page = await client.get(`/dashboard/teams/${team.id}`)
    assert.equal(page.status, 200)
    const text = htmlText(page.body)
    const row = await db.from('teams').where('id', team.id).first()
    // Three calls of $0.022: the team's spend counts the other member's too.
    assert.equal(Number(row.spent), 0.066)
    assert.include(text, formatMoney(row.spent, 'total'))
    assert.include(text, `${formatMoney(row.spent, 'total')} of ${formatMoney('5', 'total')} this month (UTC)`)
    assert.include(text, 'team-*')
    assert.include(text, '600 RPM')
    assert.include(text, '90,000 TPM')
    assert.include(text, 'admin-laptop')
    assert.include(text, adminMasked)
    // Another member's key: neither its name, its key, nor its own spend.
    assert.notInclude(text, 'members-secret-bot')
    assert.notInclude(text, memberMasked)
    assert.notInclude(text, formatMoney('0.044', 'total'))

    // The plain member sees the same team with their own key only.
    const memberPage = await (await signedIn(member)).get(`/dashboard/teams/${team.id}`)
    assert.equal(memberPage.status, 200)
    assert.include(htmlText(memberPage.body), 'members-secret-bot')
    assert.notInclude(htmlText(memberPage.body), 'admin-laptop')
    assert.include(htmlText(memberPage.body), 'Member')
  })

  test('the owner of a key in a team sees it, not being a member', async ({ assert }) => {
    const client = await signedIn(keyOwner)
    const page = await client.get(`/dashboard/teams/${team.id}`)
    assert.equal(page.status, 200)
    assert.include(htmlText(page.body), 'Owner of a key in it')
    assert.isTrue(navLink(page.body))
  })

  test('another team, or none, is 404', async ({ assert }) => {
    const client = await signedIn(admin)
    // Their own team opens: the 404s below are refusals, not a page that is not there.
    assert.equal((await client.get(`/dashboard/teams/${team.id}`)).status, 200)
    assert.equal((await client.get(`/dashboard/teams/${other.id}`)).status, 404)
    assert.equal((await client.get('/dashboard/teams/999999')).status, 404)
    const stranger = await seedUser({ balance: '1' })
    assert.equal((await (await signedIn(stranger)).get(`/dashboard/teams/${team.id}`)).status, 404)
  })

  test('the nav shows Teams only to a user in one', async ({ assert }) => {
    const stranger = await seedUser({ balance: '1' })
    const strangerPage = await (await signedIn(stranger)).get('/dashboard')
    assert.equal(strangerPage.status, 200)
    assert.isFalse(navLink(strangerPage.body))
    const teamsPage = await (await signedIn(stranger)).get('/dashboard/teams')
    assert.equal(teamsPage.status, 200)
    assert.include(htmlText(teamsPage.body), 'You are in no team')

    const memberPage = await (await signedIn(member)).get('/dashboard/keys')
    assert.isTrue(navLink(memberPage.body))
  })

  test('a key goes into a team from the portal only for its admin; a hand-made POST is refused', async ({ assert }) => {
    // A plain member: no team field, and a hand-made POST naming the team makes no key.
    const memberClient = await signedIn(member)
    const form = await memberClient.get('/dashboard/keys')
    assert.notInclude(form.body, 'name="team"')
    assert.include(htmlText(form.body), 'research-crew')
    const before = await db.from('api_keys').where('user_id', member.userId).count('* as n').first()
    const refused = await memberClient.post('/dashboard/keys', { name: 'sneaky', team: String(team.id) })
    assert.equal(refused.status, 302)
    const after = await db.from('api_keys').where('user_id', member.userId).count('* as n').first()
    assert.equal(Number(after.n), Number(before.n))
    const shown = await memberClient.get('/dashboard/keys')
    assert.include(htmlText(shown.body), 'You can put a key only in a team you are an admin of')

    // An admin of one team naming another (or one that does not exist): refused the same way.
    const outsiderClient = await signedIn(outsider)
    await outsiderClient.get('/dashboard/keys')
    for (const id of [String(team.id), '999999']) {
      const answer = await outsiderClient.post('/dashboard/keys', { name: 'sneaky', team: id })
      assert.equal(answer.status, 302)
    }
    assert.equal(Number((await db.from('api_keys').where('name', 'sneaky').count('* as n').first()).n), 0)

    // The team's admin: the form offers the team, and the key is made in it.
    const adminClient = await signedIn(admin)
    const adminForm = await adminClient.get('/dashboard/keys')
    assert.include(adminForm.body, 'name="team"')
    const made = await adminClient.post('/dashboard/keys', { name: 'crew-ci', team: String(team.id) })
    assert.equal(made.status, 200)
    const key = await ApiKey.findByOrFail('name', 'crew-ci')
    assert.equal(key.teamId, team.id)
    assert.equal(key.userId, admin.userId)
  })

  test('a key moves between teams from its edit form: into a team its owner administers, out only of one; refusals change nothing', async ({ assert }) => {
    const mover = await seedUser({ balance: '10' })
    const home = await createTeam({ alias: 'move-home' })
    const away = await createTeam({ alias: 'move-away' })
    const plain = await createTeam({ alias: 'move-plain' })
    const foreign = await createTeam({ alias: 'move-foreign' })
    await addTeamMembers(home.id, [{ user: mover.email, role: 'admin' }])
    await addTeamMembers(away.id, [{ user: mover.email, role: 'admin' }])
    await addTeamMembers(plain.id, [{ user: mover.email, role: 'user' }])
    await setKeyTeam(String(mover.keyId), home.id)
    const client = await signedIn(mover)
    const editPath = `/dashboard/keys/${mover.keyId}/edit`
    const save = async (fields: Record<string, string>) => {
      await client.get(editPath)
      return client.post(`/dashboard/keys/${mover.keyId}`, { name: 'mover-key', ...fields })
    }
    const teamOf = async () => {
      const row = await db.from('api_keys').where('id', mover.keyId).first()
      return row.team_id === null ? null : Number(row.team_id)
    }

    // The form offers the teams the owner administers, the key's own selected; a move is saved and audited.
    const form = await client.get(editPath)
    assert.include(form.body, 'name="team"')
    assert.include(form.body, 'move-away')
    assert.notInclude(form.body, 'move-plain')
    assert.equal((await save({ team: String(away.id) })).status, 302)
    assert.equal(await teamOf(), away.id)
    const audit = await db.from('audit_log').where('action', 'key.team').where('subject_id', mover.keyId).orderBy('id', 'desc').first()
    assert.deepEqual([audit.before.team_id, audit.after.team_id], [home.id, away.id])
    // Out of a team it administers: no team.
    assert.equal((await save({ team: '' })).status, 302)
    assert.isNull(await teamOf())

    // Into a team where it is a plain member, one it is not in, or none that exists: the same refusal, nothing saved.
    const refusals: string[] = []
    for (const id of [plain.id, foreign.id, 999999]) {
      assert.equal((await save({ team: String(id), name: 'renamed' })).status, 302)
      refusals.push(htmlText((await client.get(editPath)).body))
      assert.isNull(await teamOf())
      assert.equal((await db.from('api_keys').where('id', mover.keyId).first()).name, 'mover-key')
    }
    for (const page of refusals) assert.include(page, 'You can put a key only in a team you are an admin of')

    // In a team it is only a member of (an operator put it there): the form shows the team, not a field;
    // a hand-made POST moving it out, or to a team it administers, is refused; other edits keep it there.
    await setKeyTeam(String(mover.keyId), plain.id)
    const fixed = await client.get(editPath)
    assert.notInclude(fixed.body, 'name="team"')
    assert.include(htmlText(fixed.body), 'Only an admin of this team can move the key out of it.')
    for (const team of ['', String(home.id)]) {
      assert.equal((await save({ team, name: 'escaped' })).status, 302)
      assert.equal(await teamOf(), plain.id)
    }
    assert.equal((await save({ name: 'still-in-plain' })).status, 302)
    assert.equal(await teamOf(), plain.id)
    assert.equal((await db.from('api_keys').where('id', mover.keyId).first()).name, 'still-in-plain')
  })

  test('the overview says when a team of one of your keys spent its budget', async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    const tight = await createTeam({ alias: 'tight-budget-team', maxBudget: '0.01' })
    await setKeyTeam(String(user.keyId), tight.id)
    await refreshCaches()
    const client = await signedIn(user)
    assert.notInclude(htmlText((await client.get('/dashboard')).body), 'tight-budget-team')
    // The first call is admitted under the budget; its $0.022 spends it.
    assert.equal(await chat(user.key), 200)
    const page = await client.get('/dashboard')
    assert.include(htmlText(page.body), 'The budget of team tight-budget-team is spent')
    assert.equal(await chat(user.key), 402)
    // A member without a key in it is not told (nothing of theirs is refused).
    const bystander = await seedUser({ balance: '1' })
    await addTeamMembers(tight.id, [{ user: bystander.email }])
    assert.notInclude(htmlText((await (await signedIn(bystander)).get('/dashboard')).body), 'tight-budget-team')
  })
})
