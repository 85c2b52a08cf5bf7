import { test } from '@japa/runner'
import { spawnSync } from 'node:child_process'
import db from '@adonisjs/lucid/services/db'
import encryption from '@adonisjs/core/services/encryption'
import { AES256GCM } from '@adonisjs/core/encryption/drivers/aes_256_gcm'
import { putSetting } from '#services/app_settings'
import { smtpSettings, storedSmtp } from '#services/mail/smtp_settings'
import { storedSso } from '#services/sso/sso_panel_settings'
import { resetDatabase } from '#tests/helpers'

/**
 * The leftovers of this pass's merges: secrets rotation over the panel's
 * secrets, SSO link-by-email and admins, soft budgets in every place a key is
 * set, the team form's organization, the billing page's words, LiteLLM's spend
 * per organization.
 */

test.group('Leftovers (26): secrets:reencrypt covers the panel secrets', (group) => {
  group.setup(() => resetDatabase())

  test('the SMTP password and the OIDC / GitHub client secrets saved in the panel are saved again with APP_KEY (else unreadable once the old key went)', async ({ assert }) => {
    const oldKey = 'the-old-app-key-the-old-app-key-26'
    const old = new AES256GCM({ id: 'gcm', key: oldKey })
    await putSetting('smtp', { host: 'smtp.example.com', port: 587, secure: false, user: 'mailer', passwordEncrypted: old.encrypt('smtp-pass-26'), from: 'noreply@example.com' })
    await putSetting('sso', {
      oidc: { enabled: true, issuer: 'https://login.example.com', clientId: 'gw', secretEncrypted: old.encrypt('oidc-secret-26'), scopes: 'openid email', label: '', linkByEmail: false },
      github: { enabled: true, clientId: 'gh', secretEncrypted: new AES256GCM({ id: 'gcm', key: 'a-key-nobody-has-a-key-nobody-has-26' }).encrypt('gh-lost-26') },
    })
    const run = spawnSync(process.execPath, ['ace.js', 'secrets:reencrypt'], {
      cwd: process.cwd(),
      env: { ...process.env, APP_KEY_PREVIOUS: oldKey },
      encoding: 'utf8',
      timeout: 60_000,
    })
    const out = run.stdout + run.stderr
    assert.include(out, '2 panel secret(s) (SMTP password, SSO client secrets)')
    assert.equal(run.status, 1, 'the GitHub secret no key reads: said, exit 1')
    assert.include(out, '1 panel secret(s) (github)')
    assert.include(out, 'Settings > E-mail / Sign-in')

    // Read with this process's APP_KEY alone (no previous keys).
    const smtp = await storedSmtp()
    assert.equal(encryption.decrypt(smtp!.passwordEncrypted!), 'smtp-pass-26')
    assert.equal((await smtpSettings())!.password, 'smtp-pass-26')
    assert.equal(smtp!.host, 'smtp.example.com', 'the rest of the setting kept')
    const sso = await storedSso()
    assert.equal(encryption.decrypt(sso.oidc!.secretEncrypted!), 'oidc-secret-26')
    assert.equal(sso.oidc!.issuer, 'https://login.example.com')
    assert.isNull(encryption.decrypt(sso.github!.secretEncrypted!), 'the unreadable one left as it was')
    assert.equal(sso.github!.clientId, 'gh')

    const audit = await db.from('audit_log').where('action', 'secrets.reencrypt').orderBy('id', 'desc').first()
    assert.include(audit.summary, '2 panel secret(s)')
    assert.include(audit.summary, '1 panel secret(s) (github)')
    for (const secret of ['smtp-pass-26', 'oidc-secret-26', 'gh-lost-26']) {
      assert.notInclude(audit.summary, secret)
      assert.notInclude(out, secret)
    }
  }).timeout(120_000)
})
