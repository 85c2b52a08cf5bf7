/**
 * How long one look at a batch upstream may take: its object asked for, and
 * its results (or output file) read for its bill. The channel's own limits
 * do not bound it usefully here: the idle limit restarts at every byte, so an
 * upstream dripping a byte per idle period holds the read for the channel's
 * total limit (15 minutes by default), and the sweep's looks, one slow batch
 * at a time, waited behind it. 300 s reads a results file of hundreds of MB
 * (100,000 requests) at one MB a second, far slower than any provider serves
 * one. BATCH_READ_DEADLINE_SECONDS; mutable for tests.
 */
export const batchReadTiming = {
  deadlineMs: seconds('BATCH_READ_DEADLINE_SECONDS', 300) * 1000,
}

function seconds(name: string, fallback: number): number {
  const value = Number(process.env[name])
  return Number.isFinite(value) && value > 0 ? value : fallback
}

/** A look at a batch upstream ran past batchReadTiming.deadlineMs: it was ended there. */
export class BatchReadDeadline extends Error {
  constructor(what: string, ms: number) {
    super(`${what} took longer than ${Math.round(ms / 1000)} s (BATCH_READ_DEADLINE_SECONDS): ended, tried again at the next look`)
  }
}

/** A look at a batch upstream was ended by the server's shutdown: tried again after the restart. */
export class BatchReadStopped extends Error {
  constructor(what: string) {
    super(`${what} was ended by the shutdown: tried again after the restart`)
  }
}

/**
 * Runs `work` with a signal that aborts at the deadline (the dispatcher ends
 * the upstream request then, the body's read included), or when `stop`
 * aborts (the shutdown: a dripping upstream must not hold it for the
 * deadline); an abort it caused is thrown as BatchReadDeadline or
 * BatchReadStopped, saying what was ended.
 */
export async function withinReadDeadline<T>(what: string, work: (signal: AbortSignal) => Promise<T>, stop?: AbortSignal): Promise<T> {
  const ms = batchReadTiming.deadlineMs
  const controller = new AbortController()
  const timer = setTimeout(() => controller.abort(), ms)
  timer.unref()
  const onStop = () => controller.abort()
  if (stop?.aborted) controller.abort()
  else stop?.addEventListener('abort', onStop, { once: true })
  try {
    return await work(controller.signal)
  } catch (error) {
    if (stop?.aborted) throw new BatchReadStopped(what)
    if (controller.signal.aborted) throw new BatchReadDeadline(what, ms)
    throw error
  } finally {
    clearTimeout(timer)
    stop?.removeEventListener('abort', onStop)
  }
}
