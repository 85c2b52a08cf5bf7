import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import ace from '@adonisjs/core/services/ace'
import { createUser } from '#actions/create_user'
import { currentAnnouncement, forgetAnnouncement } from '#actions/set_announcement'
import AnnounceSet from '#commands/announce_set'
import { resetDatabase } from '#tests/helpers'
import { PageClient } from '#tests/page_client'
import { PanelClient } from '#tests/panel_client'

const shown = (html: string) => /data-announcement="(\w+)"[^>]*>([\s\S]*?)<\/div>/.exec(html)

test.group('The announcement on portal and public pages', (group) => {
  group.each.setup(async () => {
    await resetDatabase()
    await db.from('app_settings').delete()
    forgetAnnouncement()
  })

  test('an admin puts it up on Settings: every portal and public page shows it, with its link; empty takes it down', async ({ assert }) => {
    await createUser({ email: 'news-admin@test.local', password: 'password123', role: 'admin' })
    await createUser({ email: 'news-user@test.local', password: 'password123' })
    const panel = new PanelClient()
    await panel.login('news-admin@test.local', 'password123')
    assert.include((await panel.get('/admin/settings')).html, 'data-announcement-form')
    const saved = await panel.post('/admin/settings/announcement', { text: '  Maintenance on <Sunday> 02:00 UTC:\n30 minutes  ', level: 'warning', link: 'https://status.example.com/x' })
    assert.equal(saved.location, '/admin/settings#announcement')

    const visitor = new PageClient()
    for (const path of ['/docs', '/pricing', '/status', '/login', '/register']) {
      const match = shown((await visitor.get(path)).body)
      assert.isNotNull(match, path)
      assert.equal(match![1], 'warning')
      assert.include(match![2], 'Maintenance on &lt;Sunday&gt; 02:00 UTC: 30 minutes', 'escaped, one line')
      assert.include(match![2], 'href="https://status.example.com/x"')
    }
    const user = new PageClient()
    await user.login('news-user@test.local')
    for (const path of ['/dashboard', '/dashboard/keys', '/dashboard/billing']) assert.isNotNull(shown((await user.get(path)).body), path)
    assert.isNull(shown((await panel.get('/admin')).html), 'not in the panel itself')

    await panel.get('/admin/settings')
    await panel.post('/admin/settings/announcement', { text: '', level: 'info', link: '' })
    assert.isNull(await currentAnnouncement())
    assert.isNull(shown((await visitor.get('/docs')).body))
    const audit = await db.from('audit_log').whereIn('action', ['settings.announcement', 'settings.announcement_removed']).orderBy('id')
    assert.deepEqual(audit.map((a: any) => a.action), ['settings.announcement', 'settings.announcement_removed'])
  })

  test('bad input is refused beside its field; announce:set puts it up and --clear takes it down', async ({ assert }) => {
    await createUser({ email: 'news-admin2@test.local', password: 'password123', role: 'admin' })
    const panel = new PanelClient()
    await panel.login('news-admin2@test.local', 'password123')
    await panel.get('/admin/settings')
    const badLink = await panel.follow(await panel.post('/admin/settings/announcement', { text: 'New models', level: 'info', link: 'javascript:alert(1)' }))
    assert.include(badLink.html, 'Link: an http:// or https:// address')
    await panel.post('/admin/settings/announcement', { text: 'x'.repeat(501), level: 'info', link: '' })
    await panel.post('/admin/settings/announcement', { text: 'New models', level: 'loud', link: '' })
    assert.isNull(await currentAnnouncement(), `nothing saved: ${JSON.stringify(await currentAnnouncement())}`)

    const up = await ace.create(AnnounceSet, ['--text', 'Claude models are back', '--link', 'https://example.com/news'])
    await up.exec()
    assert.equal(up.exitCode, 0)
    assert.deepEqual(await currentAnnouncement(), { text: 'Claude models are back', level: 'info', link: 'https://example.com/news' })
    assert.include(shown((await new PageClient().get('/docs')).body)![2], 'Claude models are back')
    const down = await ace.create(AnnounceSet, ['--clear'])
    await down.exec()
    assert.isNull(await currentAnnouncement())
    const bad = await ace.create(AnnounceSet, ['--text', 'x', '--level', 'loud'])
    await bad.exec()
    assert.equal(bad.exitCode, 1)
  })
})
