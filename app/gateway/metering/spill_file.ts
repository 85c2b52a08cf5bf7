import { mkdirSync } from 'node:fs'
import { open, readdir, readFile, rm, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'

/**
 * One metering record as the batch statement takes it: the usage row and the
 * request's attempts, already serialised (see usage_meter.ts). Enough to
 * replay it with no other state.
 */
export interface SpilledRecord {
  /** usage row, keyed by the columns of WRITE_BATCH_SQL (usage_meter.ts USAGE_COLUMNS) */
  e: Record<string, unknown>
  /** attempt rows (ATTEMPT_COLUMNS) */
  a: Array<Record<string, unknown>>
}

/**
 * The metering spill: usage records the database could not take (an outage,
 * a shutdown flush that ran out of time) are appended here, one JSON line
 * each, and fsync'ed before the writer lets go of them. They are replayed
 * when the database answers again, or by the next process to start; replay
 * is idempotent because usage_records.request_id is unique (a record both
 * committed and spilled is written once).
 *
 * Each process writes its own files, `<pid>-<start ms>-<n>.jsonl` in
 * DATA_DIR/meter-spill/, so instances sharing a data directory never write
 * into the same file, and a file whose process is gone belongs to whoever
 * starts next. Appends go through one promise chain: one writer per file.
 */
export class SpillFile {
  readonly dir: string
  readonly #prefix: string
  #seq = 0
  #handle: FileHandle | null = null
  #chain: Promise<unknown> = Promise.resolve()
  /** Records appended to the current file (not yet handed to a replay) */
  #count = 0

  constructor(dataDir: string) {
    this.dir = join(dataDir, 'meter-spill')
    this.#prefix = `${process.pid}-${Date.now()}`
    mkdirSync(this.dir, { recursive: true })
  }

  /** Path of the file currently appended to. */
  get path() {
    return join(this.dir, `${this.#prefix}-${this.#seq}.jsonl`)
  }

  /** Records in the current file, waiting for a replay. */
  get pending() {
    return this.#count
  }

  /** Appends records and fsyncs: durable once this resolves. */
  append(records: SpilledRecord[]): Promise<void> {
    if (records.length === 0) return Promise.resolve()
    const text = records.map((r) => JSON.stringify(r)).join('\n') + '\n'
    return this.#serial(async () => {
      this.#handle ??= await open(this.path, 'a', 0o600)
      await this.#handle.appendFile(text)
      await this.#handle.sync()
      this.#count += records.length
    })
  }

  /**
   * Hands the current file over for replay (new appends go to a fresh file):
   * returns its path, or null when nothing was spilled.
   */
  rotate(): Promise<string | null> {
    return this.#serial(async () => {
      if (this.#count === 0) return null
      const path = this.path
      await this.#handle?.close()
      this.#handle = null
      this.#count = 0
      this.#seq++
      return path
    })
  }

  async close() {
    await this.#serial(async () => {
      await this.#handle?.close()
      this.#handle = null
    })
  }

  /** Spill files left by processes that are gone (or by this pid's predecessor). */
  async orphans(): Promise<string[]> {
    const names = await readdir(this.dir).catch(() => [] as string[])
    const out: string[] = []
    for (const name of names) {
      const match = /^(\d+)-(\d+)-\d+\.jsonl$/.exec(name)
      if (!match || `${match[1]}-${match[2]}` === this.#prefix) continue
      const pid = Number(match[1])
      if (pid !== process.pid && isAlive(pid)) continue
      out.push(join(this.dir, name))
    }
    return out.sort()
  }

  #serial<T>(work: () => Promise<T>): Promise<T> {
    const next = this.#chain.then(work, work)
    this.#chain = next.catch(() => {})
    return next
  }
}

/** Reads a spill file (a torn last line, from a crash mid-append, is skipped). */
export async function readSpill(path: string): Promise<SpilledRecord[]> {
  const text = await readFile(path, 'utf8')
  const records: SpilledRecord[] = []
  for (const line of text.split('\n')) {
    if (!line) continue
    try {
      records.push(JSON.parse(line))
    } catch {}
  }
  return records
}

export async function removeSpill(path: string) {
  await rm(path, { force: true })
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error: any) {
    return error?.code === 'EPERM'
  }
}
