import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import { createUser } from '#actions/create_user'
import { putSetting } from '#services/app_settings'
import { clearLoginThrottles } from '#services/login_throttle'
import { enqueueMail, outboxIdle, queueMail, type OutgoingMail } from '#services/mail/mail_outbox'
import { MAX_ATTEMPTS, pruneSentMail } from '#services/mail/mail_sender'
import { queueLinkMail } from '#services/mail/link_mail'
import User from '#models/user'
import { baseUrl, gateway, resetDatabase, seedUser } from '#tests/helpers'
import { PanelClient, textOf } from '#tests/panel_client'
import { MockSmtp, linkIn } from '#tests/fixtures/mock_smtp'
import { startInstance, until, type Instance } from '#tests/instances_harness'

/**
 * The durable e-mail outbox (table mail_outbox, app/services/mail/mail_sender.ts):
 * what an SMTP outage, a restart, a shutdown and a second instance do to a
 * queued message, the environment's SMTP settings, and header injection.
 */
const SITE = 'https://ai.example.test'

async function usePanelSmtp(port: number) {
  await putSetting('smtp', { host: '127.0.0.1', port, secure: false, user: null, passwordEncrypted: null, from: 'noreply@gateway.test' })
  await putSetting('mail_options', { productName: 'Acme AI', verifySignups: false, siteUrl: SITE })
}

async function noMail() {
  await db.from('app_settings').whereIn('key', ['smtp', 'mail_options']).delete()
}

function testMail(to: string, subject = 'Outbox test'): OutgoingMail {
  return { to, senderName: 'Acme AI', subject, view: 'test', data: { t: (key: string) => key, product: 'Acme AI' } }
}

const rowTo = (to: string) => db.from('mail_outbox').where('to', to).first()

/** "The backoff passed": the row is due now, and this process's sender looks. */
async function dueNow(to: string) {
  await db.from('mail_outbox').where('to', to).update({ next_attempt_at: new Date(Date.now() - 1000) })
  ;(await gateway()).mailSender!.wake()
  await outboxIdle()
}

test.group('E-mail outbox', (group) => {
  let smtp: MockSmtp
  group.setup(async () => {
    await resetDatabase()
    smtp = await new MockSmtp().start()
    return async () => {
      await noMail()
      await smtp.stop()
    }
  })
  group.each.setup(async () => {
    await usePanelSmtp(smtp.port)
    smtp.messages = []
    smtp.refuse = false
  })

  test('SMTP down, then up: the message is kept, retried after its backoff, and arrives once', async ({ assert }) => {
    const port = smtp.port
    await smtp.stop()
    assert.isTrue(queueMail(testMail('down@outbox.test')))
    await outboxIdle()
    const failed = await rowTo('down@outbox.test')
    assert.isNull(failed.sent_at)
    assert.equal(failed.attempts, 1)
    assert.match(failed.last_error, /ECONNREFUSED|connect/i)
    const waitS = (new Date(failed.next_attempt_at).getTime() - Date.now()) / 1000
    assert.isAbove(waitS, 50, 'the next attempt in about a minute')
    assert.isBelow(waitS, 61)

    smtp = await new MockSmtp().start(port)
    await dueNow('down@outbox.test')
    await smtp.waitFor('down@outbox.test')
    const sent = await rowTo('down@outbox.test')
    assert.isNotNull(sent.sent_at)
    assert.equal(sent.attempts, 2)
    assert.isNull(sent.last_error)
    await dueNow('down@outbox.test')
    assert.lengthOf(smtp.to('down@outbox.test'), 1, 'sent once')
  }).timeout(20_000)

  test('refused every time: given up after the last attempt, kept with its error; the panel shows it and Retry failed sends it', async ({
    assert,
  }) => {
    smtp.refuse = true
    queueMail(testMail('refused@outbox.test'))
    await outboxIdle()
    for (let attempt = 2; attempt <= MAX_ATTEMPTS + 1; attempt++) await dueNow('refused@outbox.test')
    const row = await rowTo('refused@outbox.test')
    assert.equal(row.attempts, MAX_ATTEMPTS, 'no attempt past the last')
    assert.isNotNull(row.failed_at)
    assert.include(row.last_error, 'Mailbox unavailable')
    assert.lengthOf(smtp.to('refused@outbox.test'), 0)

    const status = await fetch(`${baseUrl()}/api/status`).then((r) => r.json() as any)
    assert.deepEqual(Object.keys(status.mail_outbox).sort(), ['failed', 'queued', 'sent_today'], 'numbers only')
    assert.equal(status.mail_outbox.failed, 1)
    assert.equal(status.mail_outbox.queued, 0)

    await createUser({ email: 'outbox-admin@test.local', password: 'admin-password', role: 'admin' })
    await clearLoginThrottles('127.0.0.1')
    const admin = new PanelClient()
    assert.equal((await admin.login('outbox-admin@test.local', 'admin-password')).status, 302)
    const page = await admin.get('/admin/settings')
    assert.include(textOf(page.html), 'Mailbox unavailable', 'the last error is shown')
    assert.include(page.html, 'refused@outbox.test')
    assert.notInclude(page.html, 'mail.test.body', 'never a body')
    assert.match(page.html, /data-outbox-failed>1</)

    smtp.refuse = false
    const retried = await admin.post('/admin/settings/mail/retry', {})
    assert.equal(retried.status, 302)
    const audit = await db.from('audit_log').where('action', 'mail.retry').orderBy('id', 'desc').first()
    assert.equal(audit?.actor, 'outbox-admin@test.local', 'who resent mail is on record')
    assert.equal(audit?.summary, '1 failed e-mail queued again')
    await outboxIdle()
    await smtp.waitFor('refused@outbox.test')
    const after = await rowTo('refused@outbox.test')
    assert.isNotNull(after.sent_at)
    assert.isNull(after.failed_at)
    const status2 = await fetch(`${baseUrl()}/api/status`).then((r) => r.json() as any)
    assert.deepEqual(status2.mail_outbox, { queued: 0, failed: 0, sent_today: status.mail_outbox.sent_today + 1 })
  }).timeout(30_000)

  test('the prune deletes sent rows past their keeping and given-up rows after 30 days, nothing else', async ({ assert }) => {
    await outboxIdle()
    await db.from('mail_outbox').delete()
    queueMail(testMail('keep-recent@outbox.test'))
    queueMail(testMail('old-sent@outbox.test'))
    queueMail(testMail('old-failed@outbox.test'))
    queueMail(testMail('recent-failed@outbox.test'))
    await outboxIdle()
    const sent = await until(
      async () => Number((await db.from('mail_outbox').whereNotNull('sent_at').count('* as n').first())?.n),
      (n) => n === 4
    )
    assert.equal(sent, 4)
    await db.from('mail_outbox').where('to', 'old-sent@outbox.test').update({ sent_at: db.raw("now() - interval '400 days'") })
    await db.from('mail_outbox').where('to', 'old-failed@outbox.test').update({ sent_at: null, failed_at: db.raw("now() - interval '31 days'") })
    await db.from('mail_outbox').where('to', 'recent-failed@outbox.test').update({ sent_at: null, failed_at: db.raw("now() - interval '29 days'") })
    await pruneSentMail()
    const left = (await db.from('mail_outbox').select('to')).map((row) => row.to).sort()
    assert.deepEqual(left, ['keep-recent@outbox.test', 'recent-failed@outbox.test'])
  })

  test('a reset link and its message commit together; the stored body is erased once sent; an expired one is never sent', async ({
    assert,
  }) => {
    await db.transaction(async (trx) => {
      await enqueueMail(testMail('rolled-back@outbox.test'), trx)
      await trx.rollback()
    }).catch(() => {})
    assert.isNull(await rowTo('rolled-back@outbox.test'), 'rolled back with its transaction')

    const seeded = await seedUser()
    const user = await User.findOrFail(seeded.userId)
    await queueLinkMail(user, 'password_reset', SITE, 'en')
    await outboxIdle()
    const [mail] = await smtp.waitFor(user.email)
    assert.include(linkIn(mail, '/reset-password/'), `${SITE}/reset-password/`)
    const sent = await rowTo(user.email)
    assert.isNotNull(sent.sent_at)
    assert.equal(sent.html, '', 'the live link is not kept once sent')
    assert.equal(sent.text, '')
    assert.equal(sent.kind, 'password_reset')

    // Queued while the server was down, and the link expired before it came back.
    smtp.refuse = true
    await queueLinkMail(user, 'verify_email', SITE, 'en')
    await outboxIdle()
    smtp.refuse = false
    await db.from('mail_outbox').where('kind', 'verify_email').update({ expires_at: new Date(Date.now() - 1000) })
    await db.from('mail_outbox').where('kind', 'verify_email').update({ next_attempt_at: new Date(Date.now() - 1000) })
    ;(await gateway()).mailSender!.wake()
    await outboxIdle()
    const expired = await db.from('mail_outbox').where('kind', 'verify_email').first()
    assert.isNotNull(expired.failed_at)
    assert.include(expired.last_error, 'expired')
    assert.equal(expired.html, '')
    assert.lengthOf(smtp.to(user.email), 1, 'the expired link was never sent')
  }).timeout(20_000)

  test('hostile: a 1 MB subject and CR/LF in header fields never reach SMTP as a header of their own', async ({ assert }) => {
    assert.isFalse(queueMail(testMail('victim@outbox.test\r\nBcc: evil@outbox.test')), 'an address with CR/LF is refused')
    assert.isFalse(queueMail(testMail('victim@outbox.test, evil@outbox.test')), 'a list of addresses is refused')
    const huge = 'Hello\r\nBcc: evil@outbox.test\r\nX-Injected: yes\r\n' + 'A'.repeat(1024 * 1024)
    assert.isTrue(queueMail({ ...testMail('victim@outbox.test', huge), senderName: 'Acme\r\nX-Sender-Injected: yes' }))
    await outboxIdle()
    const [mail] = await smtp.waitFor('victim@outbox.test')
    assert.deepEqual(mail.to, ['victim@outbox.test'])
    assert.lengthOf(smtp.to('evil@outbox.test'), 0)
    const headers = mail.raw.split(/\r?\n\r?\n/)[0]
    assert.notMatch(headers, /^(Bcc|X-Injected|X-Sender-Injected):/im)
    assert.isBelow(mail.raw.length, 20_000, 'the subject was cut, not sent whole')
    const row = await rowTo('victim@outbox.test')
    assert.isAtMost(row.subject.length, 300)
    assert.notMatch(row.subject, /[\r\n]/)
  }).timeout(20_000)
})

/**
 * Production gateways as child processes on the test database. This
 * process's own sender is stopped meanwhile, so only theirs send.
 */
test.group('E-mail outbox: restarts, two instances, the environment', (group) => {
  let smtp: MockSmtp
  const started: Instance[] = []
  const start = async (name: string, env: Record<string, string>) => {
    const instance = await startInstance(name, env)
    started.push(instance)
    return instance
  }

  group.setup(async () => {
    await resetDatabase()
    await noMail()
    const gw = await gateway()
    await gw.mailSender!.stop(1000)
    smtp = await new MockSmtp().start()
    return async () => {
      await Promise.all(started.map((i) => i.stop()))
      await smtp.stop()
      gw.mailSender!.start()
    }
  })
  group.each.setup(async () => {
    smtp.messages = []
    smtp.holdMs = 0
    smtp.received = 0
    // A test that failed left its instances running: they must not send the next test's mail.
    await Promise.all(started.splice(0).map((i) => i.stop()))
  })

  const envOf = (extra: Record<string, string> = {}) => ({ SMTP_URL: `smtp://127.0.0.1:${smtp.port}`, MAIL_FROM: 'env-sender@gateway.test', ...extra })

  test('the environment path: SMTP_URL, and SMTP_HOST/SMTP_PORT/MAIL_FROM, send through the server they name with no panel settings', async ({
    assert,
  }) => {
    assert.isNull(await db.from('app_settings').where('key', 'smtp').first(), 'no panel server')
    const a = await start('url', envOf())
    await enqueueMail(testMail('env-url@outbox.test'))
    const [viaUrl] = await smtp.waitFor('env-url@outbox.test', 1, 10_000)
    assert.equal(viaUrl.from, 'env-sender@gateway.test')
    await a.stop()

    const other = await new MockSmtp().start()
    try {
      const b = await start('host', { SMTP_HOST: '127.0.0.1', SMTP_PORT: String(other.port), MAIL_FROM: 'host-sender@gateway.test' })
      await enqueueMail(testMail('env-host@outbox.test'))
      const [viaHost] = await other.waitFor('env-host@outbox.test', 1, 10_000)
      assert.equal(viaHost.from, 'host-sender@gateway.test')
      assert.lengthOf(smtp.to('env-host@outbox.test'), 0)
      await b.stop()
    } finally {
      await other.stop()
    }
  }).timeout(240_000)

  test('two instances send each message once', async ({ assert }) => {
    const [a, b] = await Promise.all([start('A', envOf()), start('B', envOf())])
    smtp.holdMs = 20
    const addresses = Array.from({ length: 30 }, (_, i) => `pair-${i}@outbox.test`)
    await db.transaction(async (trx) => {
      for (const to of addresses) await enqueueMail(testMail(to), trx)
    })
    const done = await until(
      async () => db.from('mail_outbox').whereIn('to', addresses).whereNotNull('sent_at').count('* as n').first(),
      (row: any) => Number(row.n) === addresses.length,
      20_000,
      100
    )
    assert.equal(Number((done as any).n), addresses.length, 'all sent')
    for (const to of addresses) assert.lengthOf(smtp.to(to), 1, `${to} once`)
    assert.equal(smtp.received, addresses.length, 'no second DATA for any')
    await Promise.all([a.stop(), b.stop()])
  }).timeout(240_000)

  test('shutdown: a send the server answers within the wait is marked sent; one it does not is given back and sent once after a restart', async ({
    assert,
  }) => {
    // The server answers within the shutdown's wait (SHUTDOWN_GRACE_MS bounds it).
    let a = await start('A', envOf({ SHUTDOWN_GRACE_MS: '4000' }))
    smtp.holdMs = 800
    smtp.received = 0
    await enqueueMail(testMail('answered@outbox.test'))
    await until(async () => smtp.received, (n) => n === 1, 10_000, 20)
    assert.equal(await a.stop(), 0)
    const answered = await rowTo('answered@outbox.test')
    assert.isNotNull(answered.sent_at, 'marked sent before the process ended')
    assert.lengthOf(smtp.to('answered@outbox.test'), 1)

    // The server does not answer before the process ends: the message stays queued.
    a = await start('A', envOf({ SHUTDOWN_GRACE_MS: '500' }))
    smtp.holdMs = 15_000
    smtp.received = 0
    await enqueueMail(testMail('unanswered@outbox.test'))
    await until(async () => smtp.received, (n) => n === 1, 10_000, 20)
    await a.stop()
    const left = await rowTo('unanswered@outbox.test')
    assert.isNull(left.sent_at)
    assert.isNull(left.locked_until, 'given back, due at the next start')
    assert.equal(left.attempts, 0, 'the interrupted attempt is not counted')
    smtp.holdMs = 0

    a = await start('A', envOf())
    await smtp.waitFor('unanswered@outbox.test', 1, 10_000)
    await until(async () => rowTo('unanswered@outbox.test'), (row) => row.sent_at !== null, 5_000)
    // The held message's connection ended with its process: it was never accepted.
    await new Promise((resolve) => setTimeout(resolve, 200))
    assert.lengthOf(smtp.to('unanswered@outbox.test'), 1, 'delivered once')
    assert.lengthOf(smtp.to('answered@outbox.test'), 1, 'the first one not again')
    await a.stop()
  }).timeout(240_000)
})
