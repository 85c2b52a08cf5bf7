import type { BatchService } from '#gateway/batches/batch_service'

/**
 * The running server's look at unfinished batches: every BATCH_POLL_SECONDS
 * (60 by default), BatchService.sweep (at most 100 batches a run, longest
 * unpolled first; the holds synced with the table), so a batch is billed
 * and its hold released even when its owner never asks for it again. State
 * lives in batch_objects: a restart picks up where the last run was. The
 * timer keeps no process alive; stop() waits for a run under way.
 */
export class BatchSweeper {
  #timer: NodeJS.Timeout | null = null
  #running: Promise<unknown> | null = null
  #stopped = false

  constructor(
    private batches: Pick<BatchService, 'sweep'>,
    private intervalMs: number,
    private log: (message: string) => void
  ) {}

  start() {
    if (this.#timer || this.#stopped) return
    this.#schedule()
  }

  #schedule() {
    this.#timer = setTimeout(() => {
      this.#running = this.batches
        .sweep()
        .catch((error) => this.log(`batch sweep failed: ${error instanceof Error ? error.message : String(error)}`))
        .finally(() => {
          this.#running = null
          if (!this.#stopped) this.#schedule()
        })
    }, this.intervalMs)
    this.#timer.unref()
  }

  async stop() {
    this.#stopped = true
    if (this.#timer) clearTimeout(this.#timer)
    await this.#running
  }
}

/** BATCH_POLL_SECONDS in ms (60 s by default; at least 5 s). */
export function batchPollMs(): number {
  const seconds = Number(process.env.BATCH_POLL_SECONDS)
  return Number.isFinite(seconds) && seconds > 0 ? Math.max(5, seconds) * 1000 : 60_000
}
