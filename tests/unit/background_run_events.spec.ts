import { test } from '@japa/runner'
import { EventEmitter } from 'node:events'
import type { ServerResponse } from 'node:http'
import { BackgroundRun, BackgroundRuns } from '#gateway/responses_store/background_runs'
import type { ResponseStore } from '#gateway/responses_store/response_store'

/**
 * The events a background run keeps for streams that start late or resume
 * (responses_store/background_runs.ts): written to a follower as fast as its
 * connection takes them, and kept within the instance's bound.
 */

/** A client connection that takes `room` writes, then says its buffer is full until drain() */
class SlowClient extends EventEmitter {
  written: string[] = []
  ended = false
  destroyed = false
  writableLength = 0
  constructor(private room: number) {
    super()
  }
  writeHead() {
    return this
  }
  write(text: string): boolean {
    this.written.push(text)
    this.writableLength += text.length
    return this.written.length < this.room
  }
  end(text?: string) {
    if (text) this.written.push(text)
    this.ended = true
  }
  destroy() {
    this.destroyed = true
    this.emit('close')
  }
  drain(room: number) {
    this.room = this.written.length + room
    this.writableLength = 0
    this.emit('drain')
  }
}

const store = { save() {} } as unknown as ResponseStore

function runs(eventsMaxBytes: number) {
  return new BackgroundRuns({ perUser: 16, pollMs: 1000, maxMs: 60_000, instanceId: 'test', eventsMaxBytes, log() {} }, store, () => undefined)
}

function event(i: number, pad = 0): string {
  return `event: response.output_text.delta\ndata: ${JSON.stringify({ type: 'response.output_text.delta', sequence_number: i, delta: 'x'.repeat(pad) })}\n\n`
}

function newRun(all: BackgroundRuns, id: string): BackgroundRun {
  const run = new BackgroundRun(id, 1, { input: 'hi', instructions: null, previousId: null, model: 'm', apiKeyId: null }, all)
  all.start(run, () => {})
  return run
}

async function end(run: BackgroundRun) {
  run.res.end(`event: response.completed\ndata: ${JSON.stringify({ type: 'response.completed', response: { status: 'completed', output: [] } })}\n\n`)
  await new Promise((resolve) => setTimeout(resolve, 0))
}

test.group('Background runs: their events', () => {
  test('a follower that does not read gets what its connection takes, the rest at each drain, then the end', async ({ assert }) => {
    const run = newRun(runs(64 * 1024 * 1024), 'resp_a')
    for (let i = 0; i < 1000; i++) run.res.write(event(i))
    const client = new SlowClient(10)
    assert.isTrue(run.follow(client as unknown as ServerResponse, -1))
    // Before: all 1,000 written at once (a client that never read held them all in the process).
    assert.lengthOf(client.written, 10)
    // Live events wait their turn behind the replay too.
    run.res.write(event(1000))
    assert.lengthOf(client.written, 10)
    await end(run)
    assert.isFalse(client.ended)
    client.drain(500)
    assert.lengthOf(client.written, 510)
    client.drain(10_000)
    assert.lengthOf(client.written, 1002)
    assert.include(client.written[1001], 'response.completed')
    assert.isTrue(client.ended)
    // In order, none twice.
    assert.include(client.written[0], '"sequence_number":0,')
    assert.include(client.written[1000], '"sequence_number":1000,')
  })

  test('resuming after N starts at N+1; past the end: only what comes', async ({ assert }) => {
    const run = newRun(runs(64 * 1024 * 1024), 'resp_b')
    for (let i = 0; i < 5; i++) run.res.write(event(i))
    const resumed = new SlowClient(100)
    run.follow(resumed as unknown as ServerResponse, 2)
    assert.lengthOf(resumed.written, 2)
    const past = new SlowClient(100)
    run.follow(past as unknown as ServerResponse, 1_000_000)
    assert.lengthOf(past.written, 0)
    run.res.write(event(5))
    assert.lengthOf(resumed.written, 3)
    assert.lengthOf(past.written, 0)
    await end(run)
    assert.isTrue(resumed.ended)
    assert.isTrue(past.ended)
  })

  test("the instance's bound: a finished run's events are let go first; a running run past it stops keeping (no late stream), its slow follower behind ended", async ({ assert }) => {
    const all = runs(40_000)
    const first = newRun(all, 'resp_first')
    for (let i = 0; i < 20; i++) first.res.write(event(i, 1000))
    await end(first)
    assert.isAbove(all.keptBytes, 20_000)
    const second = newRun(all, 'resp_second')
    const slow = new SlowClient(2)
    for (let i = 0; i < 20; i++) second.res.write(event(i, 1000))
    assert.isTrue(second.follow(slow as unknown as ServerResponse, -1))
    // The finished one made room (its row answers a GET now); before, both were kept (no bound across runs).
    assert.isUndefined(all.get('resp_first'))
    assert.isTrue(first.truncated)
    assert.isAtMost(all.keptBytes, 40_000)
    const third = newRun(all, 'resp_third')
    for (let i = 0; i < 30; i++) third.res.write(event(i, 1000))
    assert.isTrue(third.truncated)
    assert.lengthOf(third.events, 0)
    assert.isFalse(third.follow(new SlowClient(10) as unknown as ServerResponse, -1))
    for (let i = 20; i < 40; i++) second.res.write(event(i, 1000))
    // The second went past the bound with a follower behind in its events: that follower is ended, nothing kept.
    assert.isTrue(second.truncated)
    assert.isTrue(slow.destroyed)
    assert.equal(all.keptBytes, 0)
    await end(second)
    await end(third)
    assert.equal(all.keptBytes, 0)
  })

  test('past the kept events a follower that keeps up gets the live ones; one that stops reading is ended', async ({ assert }) => {
    const all = runs(10_000)
    const run = newRun(all, 'resp_live')
    const fast = new SlowClient(1_000_000)
    const stuck = new SlowClient(1_000_000)
    run.follow(fast as unknown as ServerResponse, -1)
    run.follow(stuck as unknown as ServerResponse, -1)
    for (let i = 0; i < 400; i++) {
      run.res.write(event(i, 1000))
      fast.writableLength = 0
    }
    assert.isTrue(run.truncated)
    assert.lengthOf(fast.written, 400)
    assert.isFalse(fast.destroyed)
    assert.isTrue(stuck.destroyed)
    assert.isBelow(stuck.written.length, 300)
    await end(run)
    assert.isTrue(fast.ended)
  })

  test('a cancel that comes after its last event (its close pending) leaves it as it ended: completed, with its usage, as billed', async ({ assert }) => {
    const run = newRun(runs(1024 * 1024), 'resp_race')
    run.res.write(event(0))
    const usage = { input_tokens: 3, output_tokens: 4, total_tokens: 7 }
    run.res.write(`event: response.completed\ndata: ${JSON.stringify({ type: 'response.completed', response: { status: 'completed', output: [], usage } })}\n\n`)
    assert.isFalse(run.ended)
    run.cancel()
    // Before: cancelled, usage null, while the relay billed the whole answer (200).
    assert.equal(run.status, 'completed')
    assert.deepEqual(run.view().usage, usage)
    run.res.end()
    await new Promise((resolve) => setTimeout(resolve, 0))
    assert.isTrue(run.ended)
    assert.equal(run.status, 'completed')
  })
})
