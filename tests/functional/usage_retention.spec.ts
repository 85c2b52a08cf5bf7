import { test } from '@japa/runner'
import ace from '@adonisjs/core/services/ace'
import db from '@adonisjs/lucid/services/db'
import env from '#start/env'
import pg from 'pg'
import { DateTime } from 'luxon'
import { createUser } from '#actions/create_user'
import { pruneUsage } from '#actions/prune_usage'
import { dailyTotals, medianLatencySince, rollUpDay, topBy } from '#services/usage_rollup'
import { ledgerCsv, ledgerSummary } from '#services/portal_report'
import { UsageRetentionTimer } from '#services/usage_retention_timer'
import UsagePrune from '#commands/usage_prune'
import type { MeterEvent } from '#gateway/metering/meter_event'
import { gateway, meterEvent, resetDatabase, seedChannel, seedUser, type SeededUser } from '#tests/helpers'
import { PanelClient, textOf } from '#tests/panel_client'
import { PageClient, htmlText } from '#tests/page_client'

const today = () => DateTime.utc().startOf('day')
/** Days with rows: two before the cutoff of a 31-day retention, one after it, and today. */
const day = (ago: number) => today().minus({ days: ago })
const D40 = () => day(40)
const D35 = () => day(35)
const D10 = () => day(10)

interface History {
  ann: SeededUser
  bob: SeededUser
  channelId: number
  /** ids of the rows before the cutoff (days 40 and 35), and of those kept */
  oldIds: number[]
  keptIds: number[]
}

/**
 * The same usage on every test: day 40 (three rows, one retried: two attempts, one an upstream
 * error), day 35 (two rows: another model with a slow answer, and a fallback row that asked for
 * "asked-model", retried), day 10 (two rows, one retried) and today (one row). As the meter writes
 * them: ledger charges, monthly counters, and the finished days marked for their rollup.
 */
async function history(): Promise<History> {
  await resetDatabase()
  const channel = await seedChannel({ baseUrl: 'http://127.0.0.1:9/v1', models: ['*'] })
  const ann = await seedUser({ balance: '10' })
  const bob = await seedUser({ balance: '10' })
  const meter = (await gateway()).meter
  const at = (user: SeededUser, when: DateTime, extra: Partial<MeterEvent> = {}): MeterEvent => ({
    ...meterEvent(user.userId, 'old-model'),
    apiKeyId: user.keyId,
    channelId: channel.id,
    createdAt: when.toJSDate(),
    ...extra,
  })
  const retried: Partial<MeterEvent> = {
    attemptCount: 2,
    attempts: [
      { attempt: 1, channelId: channel.id, status: 502, outcome: 'http_error', error: 'bad gateway', latencyMs: 30 },
      { attempt: 2, channelId: channel.id, status: 200, outcome: 'ok', error: null, latencyMs: 40 },
    ],
  }
  meter.record(at(ann, D40().plus({ hours: 9 })))
  meter.record(at(ann, D40().plus({ hours: 10 }), retried))
  meter.record(at(bob, D40().plus({ hours: 11 }), { status: 502, errorCode: 'provider_error', costPico: 0n }))
  meter.record(at(ann, D35().plus({ hours: 8 }), { model: 'other-model', servedModel: 'other-model', latencyMs: 2500 }))
  meter.record(at(bob, D35().plus({ hours: 9 }), { ...retried, requestedModel: 'asked-model' }))
  meter.record(at(ann, D10().plus({ hours: 12 }), retried))
  meter.record(at(bob, D10().plus({ hours: 13 })))
  meter.record(at(ann, DateTime.utc()))
  await meter.drain()
  const rows = await db.from('usage_records').orderBy('id').select('id', 'created_at')
  const cutoff = today().minus({ days: 31 }).toJSDate()
  return {
    ann,
    bob,
    channelId: channel.id,
    oldIds: rows.filter((r) => r.created_at < cutoff).map((r) => Number(r.id)),
    keptIds: rows.filter((r) => r.created_at >= cutoff).map((r) => Number(r.id)),
  }
}

/** Every figure the pages show from the rollups, the counters and the ledger, since day 40. */
async function figures() {
  const from = D40()
  return {
    days: await dailyTotals(from, today()),
    fallback: await dailyTotals(from, today(), { dim: 'model', key: 'asked-model' }),
    ann: await dailyTotals(from, today(), { dim: 'user', key: String((await db.from('users').orderBy('id').first()).id) }),
    models: await topBy('model', from, 10),
    users: await topBy('user', from, 10),
    channels: await topBy('channel', from, 10),
    p50: await medianLatencySince(from),
    monthly: await db.from('monthly_usage').orderBy(['user_id', 'period', 'model']).select('user_id', 'period', 'model', 'input_tokens', 'output_tokens'),
    ledger: await db.from('balance_ledger').orderBy('id').select('id', 'user_id', 'kind', 'amount', 'created_at'),
    balances: await db.from('users').orderBy('id').select('id', 'balance'),
  }
}

async function attemptsOf(ids: number[]) {
  if (!ids.length) return 0
  const row = await db
    .from('request_attempts')
    .whereIn('request_id', db.from('usage_records').whereIn('id', ids).select('request_id'))
    .count('* as n')
    .first()
  return Number(row.n)
}

async function signedInAdmin() {
  const email = `root-${Date.now()}@test.local`
  await createUser({ email, password: 'admin-password', role: 'admin' })
  const client = new PanelClient()
  await client.login(email, 'admin-password')
  return client
}

/** The Usage page's totals and chart for days 40 to today. */
async function usagePageFigures(client: PanelClient, query = '') {
  const page = await client.get(`/admin/usage?from=${D40().toISODate()}&to=${today().toISODate()}${query}`)
  const stats = page.html.slice(page.html.indexOf('class="stats"'), page.html.indexOf('<figure'))
  return { stats: textOf(stats), chart: /data-chart="([^"]*)"/.exec(page.html)?.[1], html: page.html }
}

/** Holds the prune's advisory lock from another connection, as a second gateway pruning would. */
async function holdingTheLock<T>(work: () => Promise<T>): Promise<T> {
  const other = new pg.Client({ connectionString: env.get('DATABASE_URL') })
  await other.connect()
  try {
    await other.query(`SELECT pg_advisory_lock(hashtext('usage_prune'), 0)`)
    return await work()
  } finally {
    await other.query(`SELECT pg_advisory_unlock(hashtext('usage_prune'), 0)`)
    await other.end()
  }
}

async function runPrune(args: string[]) {
  const command = await ace.create(UsagePrune, args)
  ace.ui.switchMode('raw')
  await command.exec()
  return { command, said: command.ui.logger.getLogs().map((l) => l.message).join('\n') }
}

function retentionOff() {
  env.set('USAGE_RETENTION_DAYS', 0)
}

test.group('Usage log retention: pruning old usage rows', () => {
  test('rows of the days before the last N go with their attempts; newer rows and theirs stay', async ({ assert }) => {
    const h = await history()
    assert.lengthOf(h.oldIds, 5)
    assert.equal(await attemptsOf(h.oldIds), 4)
    assert.equal(await attemptsOf(h.keptIds), 2)

    const result = await pruneUsage({ keepDays: 31 })

    assert.include(result, { keepDays: 31, oldestKept: today().minus({ days: 31 }).toISODate()!, rows: 5, attempts: 4, skipped: false, dryRun: false, vacuumed: true })
    assert.deepEqual(result.days, [
      { day: D40().toISODate()!, rows: 3, attempts: 2 },
      { day: D35().toISODate()!, rows: 2, attempts: 2 },
    ])
    const left = await db.from('usage_records').orderBy('id').select('id')
    assert.deepEqual(left.map((r) => Number(r.id)), h.keptIds)
    assert.equal(await db.from('request_attempts').count('* as n').first().then((r) => Number(r.n)), 2)
    assert.equal(await attemptsOf(h.keptIds), 2)
    // The days' record: how many rows went, and their ids (the request page's 404 reads it).
    const logged = await db.from('usage_pruned_days').orderBy('day').select(db.raw(`to_char(day, 'YYYY-MM-DD') AS day`), 'rows', 'attempts', 'first_id', 'last_id')
    assert.deepEqual(logged, [
      { day: D40().toISODate(), rows: 3, attempts: 2, first_id: h.oldIds[0], last_id: h.oldIds[2] },
      { day: D35().toISODate(), rows: 2, attempts: 2, first_id: h.oldIds[3], last_id: h.oldIds[4] },
    ])

    // Once more: nothing left to do.
    const again = await pruneUsage({ keepDays: 31 })
    assert.include(again, { rows: 0, attempts: 0 })
    // One audit entry for the prune that deleted something.
    const audits = await db.from('audit_log').where('action', 'usage.prune')
    assert.lengthOf(audits, 1)
    assert.equal(audits[0].source, 'cli')
    assert.include(audits[0].summary, '5 request rows and 4 attempt rows')
    assert.include(audits[0].summary, `of ${D40().toISODate()} to ${D35().toISODate()}`)
    assert.include(audits[0].after, { keepDays: 31, rows: 5, attempts: 4 })
  })

  test('logged request bodies (LOG_BODIES) older than the cutoff go too; newer ones stay', async ({ assert }) => {
    await history()
    const old = '0190a0a0-0000-7000-8000-000000000001'
    const fresh = '0190a0a0-0000-7000-8000-000000000002'
    await db.table('request_logs').multiInsert([
      { request_id: old, request_body: '{"old":true}', created_at: D40().toJSDate() },
      { request_id: fresh, request_body: '{"old":false}', created_at: D10().toJSDate() },
    ])
    const dry = await pruneUsage({ keepDays: 31, dryRun: true })
    assert.equal(dry.bodies, 1)
    const result = await pruneUsage({ keepDays: 31 })
    assert.equal(result.bodies, 1)
    const left = await db.from('request_logs').select('request_id')
    assert.deepEqual(left.map((r) => r.request_id), [fresh])
  })

  test('totals, charts, p50, monthly counters, ledger and balances are the same before and after', async ({ assert }) => {
    const h = await history()
    const admin = await signedInAdmin()
    const before = await figures()
    const pageBefore = await usagePageFigures(admin)
    const annBefore = await usagePageFigures(admin, `&user=${h.ann.userId}`)
    assert.include(pageBefore.stats, 'Requests 8')
    assert.equal(before.days.find((d) => d.day === D40().toISODate())!.requests, 3)

    const result = await pruneUsage({ keepDays: 31 })
    assert.equal(result.rows, 5)

    assert.deepEqual(await figures(), before)
    const pageAfter = await usagePageFigures(admin)
    assert.equal(pageAfter.stats, pageBefore.stats)
    assert.equal(pageAfter.chart, pageBefore.chart)
    assert.deepEqual((await usagePageFigures(admin, `&user=${h.ann.userId}`)).stats, annBefore.stats)
    // Each rolled-up day, redone from its rows left and the pruned totals, stays the same.
    await rollUpDay(D40())
    await rollUpDay(D35())
    assert.deepEqual(await figures(), before)
  })

  test('a finished day never rolled up is rolled up before its rows go', async ({ assert }) => {
    await history()
    // Rows written on their own day and never read since: no rollup, no stale mark.
    await db.from('usage_daily_stale').delete()
    assert.lengthOf(await db.from('usage_daily_days').select('day'), 0)

    const result = await pruneUsage({ keepDays: 31 })
    assert.equal(result.rows, 5)
    assert.equal(result.rolledUp, 2)
    const [d40] = await dailyTotals(D40(), D40())
    assert.include(d40, { requests: 3, errors: 1, input: 30, output: 15 })
    assert.closeTo(d40.cost, 0.002, 1e-12)
    const [d35] = await dailyTotals(D35(), D35())
    assert.include(d35, { requests: 2, errors: 0 })
    const [asked] = await dailyTotals(D35(), D35(), { dim: 'model', key: 'asked-model' })
    assert.equal(asked.requests, 1)
  })

  test('a day marked stale by a late row is rolled up again first: the late row is counted', async ({ assert }) => {
    const h = await history()
    const [rolled] = await dailyTotals(D40(), D40())
    assert.equal(rolled.requests, 3)
    // A replayed spill writes one more row for day 40 after it was rolled up: the day is marked.
    const meter = (await gateway()).meter
    meter.record({ ...meterEvent(h.ann.userId, 'old-model'), createdAt: D40().plus({ hours: 20 }).toJSDate() })
    await meter.drain()
    assert.lengthOf(await db.from('usage_daily_stale').where('day', D40().toISODate()!), 1)

    const result = await pruneUsage({ keepDays: 31 })
    assert.equal(result.rows, 6)
    assert.isAtLeast(result.rolledUp, 1)
    assert.lengthOf(await db.from('usage_daily_stale').where('day', D40().toISODate()!), 0)
    const [d40] = await dailyTotals(D40(), D40())
    assert.include(d40, { requests: 4 })
    assert.closeTo(d40.cost, 0.003, 1e-12)
  })

  test('a late row for a day already pruned: the day rolled up again keeps what was pruned and adds it', async ({ assert }) => {
    const h = await history()
    await pruneUsage({ keepDays: 31 })
    const [pruned] = await dailyTotals(D35(), D35())
    assert.equal(pruned.requests, 2)

    const meter = (await gateway()).meter
    meter.record({ ...meterEvent(h.bob.userId, 'old-model'), createdAt: D35().plus({ hours: 22 }).toJSDate() })
    await meter.drain()
    const [after] = await dailyTotals(D35(), D35())
    assert.include(after, { requests: 3 })
    assert.closeTo(after.cost, pruned.cost + 0.001, 1e-12)
    const [top] = await topBy('user', D35(), 10).then((users) => users.filter((u) => u.key === String(h.bob.userId)))
    assert.isAtLeast(top.requests, 2)
    // The next prune takes the late row too; the totals stay.
    assert.include(await pruneUsage({ keepDays: 31 }), { rows: 1 })
    await rollUpDay(D35())
    assert.deepEqual(await dailyTotals(D35(), D35()), [after])
  })

  test('a year read at once: the empty days are settled together, the days with usage rolled up from their rows', async ({ assert }) => {
    const h = await history()
    await pruneUsage({ keepDays: 31 })
    // Forget every rollup: days 40 and 35 now hold pruned totals only, day 10 its rows.
    for (const table of ['usage_daily_days', 'usage_daily', 'usage_daily_latency', 'usage_daily_stale']) await db.from(table).delete()

    const year = await dailyTotals(day(365), today())
    assert.lengthOf(year, 366)
    const busy = year.filter((d) => d.requests > 0).map((d) => [d.day, d.requests])
    assert.deepEqual(busy, [
      [D40().toISODate(), 3],
      [D35().toISODate(), 2],
      [D10().toISODate(), 2],
      [today().toISODate(), 1],
    ])
    assert.lengthOf(await db.from('usage_daily_days').select('day'), 365, 'every finished day marked rolled up')
    const rolled = await db.from('usage_daily').distinct('day').orderBy('day')
    assert.deepEqual(rolled.map((r) => DateTime.fromJSDate(r.day, { zone: 'utc' }).toISODate()), [
      D40().toISODate(),
      D35().toISODate(),
      D10().toISODate(),
    ])
    const histogram = await db.from('usage_daily_latency').distinct('day')
    assert.lengthOf(histogram, 3, 'a latency histogram for each day with usage, none for the empty ones')

    // A late row for a day settled as empty marks it; the next read counts it.
    const meter = (await gateway()).meter
    meter.record({ ...meterEvent(h.bob.userId, 'old-model'), createdAt: day(200).plus({ hours: 3 }).toJSDate() })
    await meter.drain()
    const [late] = await dailyTotals(day(200), day(200))
    assert.include(late, { requests: 1 })
    assert.lengthOf(await db.from('usage_daily_stale').select('day'), 0)
  })

  test('a late row on a day with usage, read among days to settle, is counted and its mark cleared', async ({ assert }) => {
    const h = await history()
    const [first] = await dailyTotals(D10(), D10())
    assert.equal(first.requests, 2)
    const meter = (await gateway()).meter
    meter.record({ ...meterEvent(h.ann.userId, 'old-model'), createdAt: D10().plus({ hours: 23 }).toJSDate() })
    await meter.drain()
    // Read with days around it that need a rollup: the batch that settles the empty ones keeps day 10's mark.
    await db.from('usage_daily_days').where('day', '<', D10().toISODate()!).delete()
    const totals = await dailyTotals(day(20), D10())
    assert.include(totals.at(-1)!, { day: D10().toISODate()!, requests: 3 })
    assert.lengthOf(await db.from('usage_daily_stale').where('day', D10().toISODate()!), 0)
  })

  test('dry run counts what would go and changes nothing', async ({ assert }) => {
    const h = await history()
    const stateBefore = {
      rows: await db.from('usage_records').count('* as n').first(),
      attempts: await db.from('request_attempts').count('* as n').first(),
      rolled: await db.from('usage_daily_days').select('day'),
      stale: await db.from('usage_daily_stale').select('day'),
    }
    const result = await pruneUsage({ keepDays: 31, dryRun: true })
    assert.include(result, { dryRun: true, rows: 5, attempts: 4, rolledUp: 0, batches: 0 })
    assert.deepEqual(result.days, [
      { day: D40().toISODate()!, rows: 3, attempts: 2 },
      { day: D35().toISODate()!, rows: 2, attempts: 2 },
    ])
    assert.deepEqual(
      {
        rows: await db.from('usage_records').count('* as n').first(),
        attempts: await db.from('request_attempts').count('* as n').first(),
        rolled: await db.from('usage_daily_days').select('day'),
        stale: await db.from('usage_daily_stale').select('day'),
      },
      stateBefore
    )
    assert.lengthOf(await db.from('usage_records').whereIn('id', h.oldIds), 5)
    assert.lengthOf(await db.from('audit_log').where('action', 'usage.prune'), 0)
    assert.lengthOf(await db.from('usage_pruned_days').select('day'), 0)
  })

  test('fewer than 31 days kept is refused (monthly spend caps and the 30-day chart read the rows)', async ({ assert }) => {
    await history()
    await assert.rejects(() => pruneUsage({ keepDays: 7 }), /at least 31/)
    await assert.rejects(() => pruneUsage({ keepDays: 31.5 }), /whole number/)
    assert.equal(await db.from('usage_records').count('* as n').first().then((r) => Number(r.n)), 8)
  })

  test('attempts older than the cutoff whose usage row is already gone (a deleted user) go too', async ({ assert }) => {
    const h = await history()
    // A user's deletion deletes its usage rows (trigger) but not their attempts.
    const bobOld = await db.from('usage_records').where('user_id', h.bob.userId).whereIn('id', h.oldIds).select('request_id')
    await db.from('usage_records').where('user_id', h.bob.userId).whereIn('id', h.oldIds).delete()
    const orphans = await db.from('request_attempts').whereIn('request_id', bobOld.map((r) => r.request_id)).count('* as n').first()
    assert.equal(Number(orphans.n), 2)
    assert.include(await pruneUsage({ keepDays: 31, dryRun: true }), { rows: 3, attempts: 4 })
    const result = await pruneUsage({ keepDays: 31 })
    assert.include(result, { rows: 3, attempts: 4 })
    assert.equal(await db.from('request_attempts').count('* as n').first().then((r) => Number(r.n)), 2)
  })

  test('billing page and ledger CSV are the same after the prune; the ledger is not touched', async ({ assert }) => {
    const h = await history()
    const user = new PageClient()
    await user.login(h.ann.email)
    const billingBefore = htmlText((await user.get('/dashboard/billing')).body)
    const csvBefore = (await user.get('/dashboard/billing.csv')).body
    const summaryBefore = await ledgerSummary(h.ann.userId)
    const charged = await db.from('balance_ledger').where('kind', 'charge').whereIn('usage_record_id', h.oldIds).orderBy('id').select('id', 'usage_record_id')
    assert.isAbove(charged.length, 0)

    await pruneUsage({ keepDays: 31 })

    assert.equal(htmlText((await user.get('/dashboard/billing')).body), billingBefore)
    assert.equal((await user.get('/dashboard/billing.csv')).body, csvBefore)
    assert.deepEqual(await ledgerSummary(h.ann.userId), summaryBefore)
    assert.equal(await ledgerCsv(h.ann.userId), csvBefore)
    // The ledger is not touched: the charges stay, with the id of the request they charged.
    const after = await db.from('balance_ledger').whereIn('id', charged.map((c) => c.id)).orderBy('id').select('id', 'usage_record_id')
    assert.deepEqual(after, charged)

    // Any other delete of a usage row still clears the charge's reference (the trigger, as before).
    const kept = await db.from('balance_ledger').where('kind', 'charge').where('usage_record_id', h.keptIds[0]).select('id').first()
    await db.from('usage_records').where('id', h.keptIds[0]).delete()
    assert.isNull((await db.from('balance_ledger').where('id', kept.id).first()).usage_record_id)
  })

  test('one prune at a time: a prune while another holds the lock skips; two at once delete each row once', async ({ assert }) => {
    await history()
    const before = await figures()
    // Another process (a second gateway, an ace command) is pruning: it holds the advisory lock.
    await holdingTheLock(async () => {
      assert.include(await pruneUsage({ keepDays: 31 }), { skipped: true, rows: 0 })
    })
    assert.equal(await db.from('usage_records').count('* as n').first().then((r) => Number(r.n)), 8)

    // Two at once, in small batches, while a reader rolls the same days up again and again:
    // no deadlock, every row deleted once, the totals neither lost nor doubled.
    let reading = true
    const reader = (async () => {
      while (reading) {
        await rollUpDay(D40())
        await rollUpDay(D35())
      }
    })()
    const [a, b] = await Promise.all([pruneUsage({ keepDays: 31, batchSize: 1 }), pruneUsage({ keepDays: 31, batchSize: 1 })])
    reading = false
    await reader
    assert.equal(a.rows + b.rows, 5)
    assert.equal(a.attempts + b.attempts, 4)
    assert.isTrue(a.skipped || b.skipped || a.rows === 0 || b.rows === 0)
    const pruned = await db.from('usage_daily_pruned').where('dim', 'model').sum('requests as n').first()
    assert.equal(Number(pruned.n), 5)
    assert.deepEqual(await figures(), before)
  })

  test('the meter writes while a prune runs: nothing waits on it', async ({ assert }) => {
    const h = await history()
    const meter = (await gateway()).meter
    const prune = pruneUsage({ keepDays: 31, batchSize: 1, pauseMs: 30 })
    const started = Date.now()
    for (let i = 0; i < 5; i++) meter.record(meterEvent(h.ann.userId))
    await meter.drain()
    const metered = Date.now() - started
    const result = await prune
    assert.equal(result.rows, 5)
    assert.isBelow(metered, 2000)
    assert.equal(await db.from('usage_records').count('* as n').first().then((r) => Number(r.n)), 8)
  })
})

test.group('Usage log retention: the usage:prune command', (group) => {
  group.each.teardown(() => retentionOff())

  test('usage:prune --dry-run prints what would go; then deletes it; refuses fewer than 31 days', async ({ assert }) => {
    await history()
    const since = today().minus({ days: 31 }).toISODate()
    const dry = await runPrune(['--keep-days', '31', '--dry-run'])
    assert.equal(dry.command.exitCode ?? 0, 0)
    assert.include(dry.said, `Dry run: would delete 5 usage rows and 4 attempts of ${D40().toISODate()} to ${D35().toISODate()} (2 days)`)
    assert.include(dry.said, `Oldest day kept: ${since} (31 days)`)
    assert.equal(await db.from('usage_records').count('* as n').first().then((r) => Number(r.n)), 8)

    const real = await runPrune(['--keep-days', '31'])
    assert.equal(real.command.exitCode ?? 0, 0)
    assert.include(real.said, `Deleted 5 usage rows and 4 attempts of ${D40().toISODate()} to ${D35().toISODate()} (2 days); 2 day(s) rolled up first`)
    assert.include(real.said, `Oldest day kept: ${since}`)
    assert.equal(await db.from('usage_records').count('* as n').first().then((r) => Number(r.n)), 3)

    const short = await runPrune(['--keep-days', '7'])
    assert.equal(short.command.exitCode, 1)
    assert.include(short.said, 'at least 31')
    const none = await runPrune([])
    assert.equal(none.command.exitCode, 1)
    assert.include(none.said, 'Give --keep-days N (or set USAGE_RETENTION_DAYS)')
    // Without --keep-days, USAGE_RETENTION_DAYS is the default.
    env.set('USAGE_RETENTION_DAYS', 40)
    const fromEnv = await runPrune(['--dry-run'])
    assert.include(fromEnv.said, `Oldest day kept: ${today().minus({ days: 40 }).toISODate()} (40 days)`)
  })

  test('npm run ace -- usage:prune in its own process (ace loads every command before booting)', async ({ assert }) => {
    await history()
    const { spawnSync } = await import('node:child_process')
    const result = spawnSync(process.execPath, ['ace.js', 'usage:prune', '--keep-days', '31'], {
      cwd: process.cwd(),
      env: { ...process.env, LOG_LEVEL: 'info' },
      encoding: 'utf8',
      timeout: 60_000,
    })
    assert.equal(result.status, 0, result.stderr)
    assert.include(result.stdout, 'Deleted 5 usage rows and 4 attempts')
    assert.include(result.stdout, `Oldest day kept: ${today().minus({ days: 31 }).toISODate()} (31 days)`)
    assert.equal(await db.from('usage_records').count('* as n').first().then((r) => Number(r.n)), 3)
  }).timeout(90_000)

  test("usage:prune sweeps what the server's hourly timer sweeps: expired Realtime client secrets and provider files (one list)", async ({ assert }) => {
    const user = await seedUser()
    const channel = await seedChannel({ name: `gemini-prune-${Date.now()}`, provider: 'gemini', baseUrl: 'http://127.0.0.1:9', models: ['gemini-prune'] })
    const hourAgo = new Date(Date.now() - 3_600_000)
    await db.table('realtime_client_secrets').insert([
      { secret_hash: 'a'.repeat(64), api_key_id: user.keyId, model: 'gpt-realtime', session: '{}', expires_at: hourAgo },
      { secret_hash: 'b'.repeat(64), api_key_id: user.keyId, model: 'gpt-realtime', session: '{}', expires_at: new Date(Date.now() + 3_600_000) },
    ])
    const files = { kind: 'gemini_file', user_id: user.userId, channel_id: Number(channel.id) }
    await db.table('provider_files').insert([
      { ...files, status: 'active', upstream_id: 'files/prune-expired', expires_at: hourAgo },
      { ...files, status: 'uploading', upload_token: 'prune-abandoned', created_at: new Date(Date.now() - 8 * 86_400_000) },
    ])
    const left = async () => ({
      secrets: Number((await db.from('realtime_client_secrets').where('api_key_id', user.keyId).count('* as n').first()).n),
      files: (await db.from('provider_files').where('user_id', user.userId).orderBy('id').select('status')).map((r: any) => r.status),
    })
    const dry = await runPrune(['--keep-days', '31', '--dry-run'])
    assert.include(dry.said, 'realtime client secrets: 1 expired would be deleted')
    assert.include(dry.said, 'provider files: would mark 1 expired deleted, remove 1 unfinished uploads and 0 deleted rows')
    assert.deepEqual(await left(), { secrets: 2, files: ['active', 'uploading'] })
    const real = await runPrune(['--keep-days', '31'])
    assert.equal(real.command.exitCode ?? 0, 0)
    assert.include(real.said, 'realtime client secrets: 1 expired deleted')
    assert.include(real.said, 'provider files: 1 expired marked deleted, 1 unfinished uploads and 0 deleted rows removed')
    assert.deepEqual(await left(), { secrets: 1, files: ['deleted'] })
  })

  test('usage:prune while another prune runs says so, deletes nothing and exits 1', async ({ assert }) => {
    await history()
    const skipped = await holdingTheLock(() => runPrune(['--keep-days', '31']))
    assert.equal(skipped.command.exitCode, 1)
    assert.include(skipped.said, 'Another prune is running')
    assert.equal(await db.from('usage_records').count('* as n').first().then((r) => Number(r.n)), 8)
  })
})

test.group('Usage log retention: the server\'s hourly timer', () => {
  test('the server\'s hourly timer: a tick prunes with USAGE_RETENTION_DAYS and is audited as the system; off at 0', async ({ assert }) => {
    await history()
    const said: string[] = []
    let days = 0
    const timer = new UsageRetentionTimer({ days: () => days, log: (m) => said.push(m) })
    assert.isNull(await timer.tick())
    assert.equal(await db.from('usage_records').count('* as n').first().then((r) => Number(r.n)), 8)

    days = 31
    const result = await timer.tick()
    assert.include(result, { rows: 5, attempts: 4 })
    assert.match(said.join('\n'), /usage retention \(31 days\): 5 usage rows and 4 attempts before \d{4}-\d{2}-\d{2} deleted in \d+ ms/)
    const audit = await db.from('audit_log').where('action', 'usage.prune').first()
    assert.include(audit, { actor: 'system:retention', source: 'system' })
    await timer.stop()
    assert.isNull(await timer.tick(), 'stopped: no more runs')
  })

  test('the timer runs by itself once started (unref\'d), and stop() waits for a run under way', async ({ assert }) => {
    await history()
    const said: string[] = []
    const timer = new UsageRetentionTimer({ days: () => 31, firstDelayMs: 10, intervalMs: 60_000, log: (m) => said.push(m) })
    timer.start()
    const deadline = Date.now() + 10_000
    while (!said.length && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
    await timer.stop()
    assert.match(said.join('\n'), /5 usage rows and 4 attempts/)
    assert.equal(await db.from('usage_records').count('* as n').first().then((r) => Number(r.n)), 3)
  })

  test('a tick while another process prunes skips and says so', async ({ assert }) => {
    await history()
    const said: string[] = []
    const result = await holdingTheLock(() => new UsageRetentionTimer({ days: () => 31, log: (m) => said.push(m) }).tick())
    assert.include(result, { skipped: true, rows: 0 })
    assert.include(said.join('\n'), 'another process is pruning')
    assert.equal(await db.from('usage_records').count('* as n').first().then((r) => Number(r.n)), 8)
  })
})

test.group('Usage log retention: what admins and users see', (group) => {
  group.each.teardown(() => retentionOff())

  test('the admin ledger still links a pruned request\'s charge; its page is a 404 that says why; an unknown id, the usual 404', async ({ assert }) => {
    const h = await history()
    env.set('USAGE_RETENTION_DAYS', 31)
    await pruneUsage({ keepDays: 31 })
    // The admin's view of the user's ledger links each charge to its request: a pruned one's page says what became of it.
    const admin = await signedInAdmin()
    const page = await admin.get(`/admin/users/${h.ann.userId}`)
    assert.equal(page.status, 200)
    const annCharged = await db.from('balance_ledger').where('user_id', h.ann.userId).where('kind', 'charge').whereIn('usage_record_id', h.oldIds).select('usage_record_id')
    for (const charge of annCharged) assert.include(page.html, `href="/admin/usage/${charge.usage_record_id}"`)
    const followed = await admin.get(`/admin/usage/${annCharged[0].usage_record_id}`)
    assert.equal(followed.status, 404)
    assert.include(textOf(followed.html), 'is no longer in the log')
    const pruned = await admin.get(`/admin/usage/${h.oldIds[1]}`)
    assert.equal(pruned.status, 404)
    const text = textOf(pruned.html)
    assert.include(text, `Request #${h.oldIds[1]} is no longer in the log`)
    assert.include(text, `a request of ${D40().toISODate()} (UTC)`)
    assert.include(text, `request rows are kept for 31 days, from ${today().minus({ days: 31 }).toISODate()} on`)
    assert.include(pruned.html, `href="/admin/usage?from=${D40().toISODate()}&amp;to=${D40().toISODate()}"`)
    const never = await admin.get('/admin/usage/987654')
    assert.equal(never.status, 404)
    assert.notInclude(never.html, 'is no longer in the log')
    const kept = await admin.get(`/admin/usage/${h.keptIds[0]}`)
    assert.equal(kept.status, 200)
  })

  test('with retention on, the Usage page says how long rows are kept and that totals cover all time', async ({ assert }) => {
    await history()
    const admin = await signedInAdmin()
    const off = await usagePageFigures(admin)
    assert.notInclude(off.html, 'data-retention')

    env.set('USAGE_RETENTION_DAYS', 31)
    await pruneUsage({ keepDays: 31 })
    const since = today().minus({ days: 31 }).toISODate()
    const on = await usagePageFigures(admin)
    const text = textOf(on.html)
    assert.include(text, 'Request rows are kept for 31 days; totals and charts cover all time.')
    assert.include(text, `The request list and the CSV start on ${since}: dates before it show totals only.`)
    assert.notInclude(on.html, 'data-partial-totals')
    assert.include(on.stats, 'Requests 8')
    // A status is in the rollups, pruned days' too (migration 1032): all time, no notice.
    const byStatus = await usagePageFigures(admin, '&status=ok')
    assert.notInclude(byStatus.html, 'data-partial-totals')
    assert.include(byStatus.stats, 'Requests 7 no errors', 'the 8 less the pruned 502, 4 of the 7 pruned')
    assert.include((await usagePageFigures(admin, '&status=error')).stats, 'Requests 1 1 errors', 'the pruned 502')
    // An error code is counted from the rows: the page says these totals leave the pruned rows out.
    const byCode = await usagePageFigures(admin, '&status=rate_limited')
    assert.include(byCode.html, 'data-partial-totals')
    assert.include(textOf(byCode.html), `before ${since} these totals leave out the rows the retention deleted`)
  })

  test('the portal usage log has a note in the user\'s language when retention is on', async ({ assert }) => {
    const h = await history()
    const user = new PageClient()
    await user.login(h.ann.email)
    assert.notInclude((await user.get('/dashboard/usage')).body, 'data-retention')
    env.set('USAGE_RETENTION_DAYS', 45)
    const en = htmlText((await user.get('/dashboard/usage')).body)
    assert.include(en, 'Requests are listed for 45 days, from')
    assert.include(en, 'your balance, billing and this month\'s usage still count them')
    const vi = new PageClient({ 'accept-language': 'vi' })
    await vi.login(h.ann.email)
    assert.include(htmlText((await vi.get('/dashboard/usage')).body), 'Các yêu cầu được giữ trong 45 ngày')
    const zh = new PageClient({ 'accept-language': 'zh-CN' })
    await zh.login(h.ann.email)
    assert.include(htmlText((await zh.get('/dashboard/usage')).body), '请求记录保留 45 天')
  })
})
