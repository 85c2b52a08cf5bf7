import { test } from '@japa/runner'
import app from '@adonisjs/core/services/app'
import db from '@adonisjs/lucid/services/db'
import { mkdtempSync, readdirSync, readFileSync, copyFileSync, chmodSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { UsageMeter } from '#gateway/metering/usage_meter'
import { pruneUsage } from '#actions/prune_usage'
import { balanceAndLedger, meterEvent, resetDatabase, seedUser } from '#tests/helpers'
import { cuttableProxy } from '#tests/fixtures/cuttable_proxy'

function spillDir() {
  const dir = mkdtempSync(join(tmpdir(), 'gw-spill-'))
  chmodSync(dir, 0o755)
  return dir
}

async function meter(connectionString: string, dir: string) {
  const logger = await app.container.make('logger')
  return new UsageMeter({ connectionString, batchSize: 50, flushMs: 5, logger, spillDir: dir })
}

async function rowsFor(userId: number) {
  return db.from('usage_records').where('user_id', userId).count('* as n').first().then((r) => Number(r.n))
}

test.group('Metering spill file: bounded flush, outage, replay', (group) => {
  group.setup(async () => {
    await resetDatabase()
  })

  test('database unreachable at shutdown: the flush is bounded, records spilled and reported on stderr', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const dir = spillDir()
    const dead = await meter('postgres://postgres:x@127.0.0.1:9/gateway_test', dir)
    for (let i = 0; i < 3; i++) dead.record(meterEvent(user.userId, 'spill-model'))

    const written: string[] = []
    const original = process.stderr.write.bind(process.stderr)
    process.stderr.write = ((chunk: any, ...rest: any[]) => {
      written.push(String(chunk))
      return original(chunk, ...rest)
    }) as any
    const started = Date.now()
    try {
      await dead.close(3000)
    } finally {
      process.stderr.write = original
    }
    // Before the fix the writer retried for minutes (forever, against a server shutting down).
    assert.isBelow(Date.now() - started, 5000)
    const files = readdirSync(join(dir, 'meter-spill'))
    assert.lengthOf(files, 1)
    const lines = readFileSync(join(dir, 'meter-spill', files[0]), 'utf8').trim().split('\n')
    assert.lengthOf(lines, 3)
    const notice = written.join('')
    assert.include(notice, '3 usage record(s)')
    assert.include(notice, join(dir, 'meter-spill', files[0]))
    assert.equal(await rowsFor(user.userId), 0)

    // The next start replays it, once: a second replay of the same records changes nothing.
    const copy = join(dir, 'copy.jsonl')
    copyFileSync(join(dir, 'meter-spill', files[0]), copy)
    await new Promise((r) => setTimeout(r, 5))
    const next = await meter(process.env.DATABASE_URL!, dir)
    assert.equal(await next.replayOrphans(), 3)
    assert.lengthOf(readdirSync(join(dir, 'meter-spill')), 0)
    assert.equal(await rowsFor(user.userId), 3)
    copyFileSync(copy, join(dir, 'meter-spill', files[0]))
    assert.equal(await next.replayOrphans(), 3)
    assert.equal(await rowsFor(user.userId), 3, 'request_id is unique: no double row')
    const money = await balanceAndLedger(user.userId)
    assert.equal(money.balance, money.ledger)
    assert.equal(Number(money.balance), 1 - 3 * 0.001, 'charged once per request')
    await next.close()
  }).timeout(20000)

  test('requested_model goes through the spill file; a spill written before the column replays it as NULL', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const dir = spillDir()
    const dead = await meter('postgres://postgres:x@127.0.0.1:9/gateway_test', dir)
    const asked = { ...meterEvent(user.userId, 'spill-served'), requestedModel: 'spill-asked' }
    const plain = meterEvent(user.userId, 'spill-served')
    const old = { ...meterEvent(user.userId, 'spill-served'), requestedModel: 'spill-asked' }
    for (const event of [asked, plain, old]) dead.record(event)
    const original = process.stderr.write.bind(process.stderr)
    process.stderr.write = (() => true) as any
    try {
      await dead.close(3000)
    } finally {
      process.stderr.write = original
    }
    const [file] = readdirSync(join(dir, 'meter-spill'))
    const path = join(dir, 'meter-spill', file)
    // The third record as a gateway before this column wrote it: no requested_model key at all.
    const lines = readFileSync(path, 'utf8').trim().split('\n').map((line) => JSON.parse(line))
    assert.equal(lines[0].e.requested_model, 'spill-asked')
    delete lines[2].e.requested_model
    writeFileSync(path, lines.map((line) => JSON.stringify(line)).join('\n') + '\n')

    await new Promise((r) => setTimeout(r, 5))
    const next = await meter(process.env.DATABASE_URL!, dir)
    assert.equal(await next.replayOrphans(), 3)
    const rows = await db.from('usage_records').where('user_id', user.userId).select('request_id', 'model', 'requested_model')
    const byId = new Map(rows.map((row) => [row.request_id, row]))
    assert.deepEqual(
      [asked, plain, old].map((e) => byId.get(e.requestId)?.requested_model),
      ['spill-asked', null, null]
    )
    await next.close()
  }).timeout(20000)

  test('a Postgres outage while running: records spilled, pending kept, replayed exactly once when it is back', async ({ assert, cleanup }) => {
    const user = await seedUser({ balance: '1' })
    const proxy = await cuttableProxy(new URL(process.env.DATABASE_URL!))
    const dir = spillDir()
    const live = await meter(proxy.url, dir)
    // Closed even when an assertion fails (an open proxy would keep the test process alive).
    cleanup(async () => {
      proxy.restore()
      await live.close()
      await proxy.close()
    })

    live.record(meterEvent(user.userId, 'spill-model'))
    await live.drain()
    assert.equal(await rowsFor(user.userId), 1)

    proxy.cut()
    // Through the user's key: its spend cap's pending cost follows the spill too.
    const keyed = () => ({ ...meterEvent(user.userId, 'spill-model'), apiKeyId: user.keyId })
    for (let i = 0; i < 20; i++) live.record(keyed())
    await live.drain()
    assert.isTrue(live.degraded)
    assert.equal(live.spilledPending, 20)
    assert.equal(await rowsFor(user.userId), 1)
    // Still counted against the user's cached balance while spilled.
    assert.equal(live.pendingFor(user.userId).costPico, 20n * 1_000_000_000n)
    assert.equal(live.pendingKeyCost(user.keyId, -Infinity), 20n * 1_000_000_000n)
    // More traffic during the outage goes straight to disk; memory stays empty.
    for (let i = 0; i < 5; i++) live.record(keyed())
    await live.drain()
    assert.equal(live.queued, 0)
    assert.equal(live.spilledPending, 25)
    assert.equal(live.pendingKeyCost(user.keyId, -Infinity), 25n * 1_000_000_000n)

    proxy.restore()
    for (let i = 0; i < 100 && (live.degraded || live.spilledPending > 0); i++) {
      await new Promise((r) => setTimeout(r, 100))
    }
    await live.drain()
    assert.isFalse(live.degraded)
    assert.equal(await rowsFor(user.userId), 26)
    assert.equal(live.pendingFor(user.userId).costPico, 0n)
    assert.equal(live.pendingKeyCost(user.keyId, -Infinity), 0n, 'settled by the replay')
    const keyRow = await db.from('api_keys').where('id', user.keyId).first()
    assert.equal(Number(keyRow.spent), 25 * 0.001)
    assert.lengthOf(readdirSync(join(dir, 'meter-spill')), 0)
    const money = await balanceAndLedger(user.userId)
    assert.equal(money.balance, money.ledger)
    assert.equal(Number(money.balance), 1 - 26 * 0.001)
  }).timeout(30000)

  test('a batch in flight when a close gives up is spilled once, not again when its retries fail later', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const dir = spillDir()
    const dead = await meter('postgres://postgres:x@127.0.0.1:9/gateway_test', dir)
    for (let i = 0; i < 3; i++) dead.record(meterEvent(user.userId, 'spill-model'))
    // The writer's retries (50, 250, 1000 ms) outlast this close: it spills the batch in flight.
    await dead.close(100)
    // Then the retries fail; before the fix the writer spilled the same batch a second time.
    await new Promise((r) => setTimeout(r, 1600))
    const files = readdirSync(join(dir, 'meter-spill'))
    assert.lengthOf(files, 1)
    assert.lengthOf(readFileSync(join(dir, 'meter-spill', files[0]), 'utf8').trim().split('\n'), 3)
  }).timeout(30000)

  test('a spill replayed after its day was pruned: what was already charged is not charged again, the rest is', async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    const dir = spillDir()
    const dayOld = new Date(Date.now() - 40 * 86_400_000)
    const at = (ms: number, cost = 1_000_000_000n) => ({
      ...meterEvent(user.userId, 'pruned-model'),
      createdAt: new Date(dayOld.getTime() + ms),
      costPico: cost,
    })
    // Written (and charged) before the outage that left the spill: a batch that committed as
    // the writer gave up on it. Twins: one user, one instant, one cost; only the first was written.
    const written = at(1)
    const twinWritten = at(2)
    const twinNot = { ...at(2), requestId: crypto.randomUUID() }
    const neverWritten = at(3)
    const free = at(4, 0n)
    const live = await meter(process.env.DATABASE_URL!, dir)
    live.record(written)
    live.record(twinWritten)
    await live.close()
    assert.equal(await rowsFor(user.userId), 2)

    const dead = await meter('postgres://postgres:x@127.0.0.1:9/gateway_test', dir)
    for (const event of [written, twinWritten, twinNot, neverWritten, written, free]) dead.record(event)
    await dead.close(1000)
    assert.lengthOf(readdirSync(join(dir, 'meter-spill')), 1)

    // A month later the retention prune deletes that day's rows; the ledger keeps their charges.
    const pruned = await pruneUsage({ keepDays: 31 })
    assert.equal(pruned.rows, 2)
    assert.equal(await rowsFor(user.userId), 0)

    await new Promise((r) => setTimeout(r, 5))
    const next = await meter(process.env.DATABASE_URL!, dir)
    assert.equal(await next.replayOrphans(), 6)
    await next.close()
    const rows = await db.from('usage_records').where('user_id', user.userId).select('request_id', 'cost')
    // Before the fix: all four costed records went in again (two of them charged twice). Of the
    // twins, one goes in: the charge found says one of them was written, not which.
    const ids = rows.map((r) => r.request_id)
    assert.lengthOf(ids, 3)
    assert.includeMembers(ids, [neverWritten.requestId, free.requestId])
    assert.lengthOf(ids.filter((id) => id === twinNot.requestId || id === twinWritten.requestId), 1)
    const charges = await db.from('balance_ledger').where({ user_id: user.userId, kind: 'charge' }).count('* as n').first()
    assert.equal(Number(charges.n), 4, 'written, its twin, the other twin, the one never written: one charge each')
    const money = await balanceAndLedger(user.userId)
    assert.equal(money.balance, money.ledger)
    assert.equal(Number(money.balance), 10 - 4 * 0.001)
  }).timeout(30000)

  test('the in-memory queue is bounded: beyond maxQueued the overflow is spilled', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const proxy = await cuttableProxy(new URL(process.env.DATABASE_URL!))
    const dir = spillDir()
    const logger = await app.container.make('logger')
    const bounded = new UsageMeter({ connectionString: proxy.url, batchSize: 10, flushMs: 1000, logger, spillDir: dir, maxQueued: 50 })
    proxy.cut()
    for (let i = 0; i < 120; i++) bounded.record(meterEvent(user.userId, 'spill-model'))
    assert.isBelow(bounded.queued, 50)
    await bounded.drain()
    proxy.restore()
    for (let i = 0; i < 100 && (bounded.degraded || bounded.spilledPending > 0); i++) {
      await new Promise((r) => setTimeout(r, 100))
    }
    await bounded.drain()
    assert.equal(await rowsFor(user.userId), 120)
    await bounded.close()
    await proxy.close()
  }).timeout(30000)
})
