import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import { createUser } from '#actions/create_user'
import { nextBatchSize } from '#services/usage_csv'
import { PanelClient } from '#tests/panel_client'
import { baseUrl, gateway, meterEvent, resetDatabase, seedUser } from '#tests/helpers'

/**
 * The usage CSV export's keyset batches grow from 100 rows to 5,000, so the
 * first row goes out after ~100 matching rows are read (a sparse filter
 * over 30 days at 1M rows waited 555 ms for a batch of 5,000 before its
 * first data byte), and every row is still exported once, newest first,
 * across the batches' boundaries.
 */
test.group('Usage CSV export batches', (group) => {
  let userId = 0
  let client: PanelClient
  const ROWS = 2_150 // 100 + 400 + 1,600, then 50 in a batch of up to 5,000

  group.setup(async () => {
    await resetDatabase()
    await createUser({ email: 'ops@csv.local', password: 'password123', role: 'admin' })
    userId = (await seedUser()).userId
    const meter = (await gateway()).meter
    const now = Date.now()
    for (let i = 0; i < ROWS; i++) {
      meter.record({
        ...meterEvent(userId, i % 2 ? 'csv-a' : 'csv-b'),
        status: i % 7 === 0 ? 502 : 200,
        errorCode: i % 7 === 0 ? 'provider_error' : null,
        createdAt: new Date(now - (ROWS - i) * 1000),
      })
    }
    await meter.drain()
    client = new PanelClient()
    await client.login('ops@csv.local', 'password123')
  })

  async function exported(query: string) {
    const answer = await fetch(`${baseUrl()}/admin/usage/export.csv?${query}`, {
      headers: { cookie: [...client.cookies].map(([k, v]) => `${k}=${v}`).join('; ') },
    })
    const lines = (await answer.text()).trim().split('\n')
    return { status: answer.status, header: lines[0], ids: lines.slice(1).map((l) => Number(l.split(',')[0])) }
  }

  test('the first batch is 100 rows, each next one 4x larger, at most 5,000', async ({ assert }) => {
    const sizes: number[] = []
    let size: number | null = null
    for (let i = 0; i < 6; i++) sizes.push((size = nextBatchSize(size)))
    assert.deepEqual(sizes, [100, 400, 1600, 5000, 5000, 5000])
  })

  test('every row once, newest first, across the batches (all rows, and a sparse filter)', async ({ assert }) => {
    for (const [query, where] of [
      [`user=${userId}`, (q: any) => q],
      [`user=${userId}&status=error&model=csv-b`, (q: any) => q.where('status', '>=', 400).where('model', 'csv-b')],
    ] as const) {
      const csv = await exported(query)
      assert.equal(csv.status, 200)
      assert.match(csv.header, /^id,created_at,request_id/)
      const expected = (await where(db.from('usage_records').where('user_id', userId)).orderBy('id', 'desc').select('id')).map((r: any) => Number(r.id))
      assert.isAbove(expected.length, 100, query)
      assert.deepEqual(csv.ids, expected, query)
    }
    assert.lengthOf((await exported(`user=${userId}`)).ids, ROWS)
  })
})
