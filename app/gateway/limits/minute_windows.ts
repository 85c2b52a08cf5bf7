/**
 * Fixed one-minute windows counted in this process's memory, one per numeric
 * id (a key's or a user's; a key's model's by its text id): what @adonisjs/limiter's memory store counts,
 * without its per-call promises, response objects, string keys and `Date`s.
 *
 * A window opens at its first hit and lasts `WINDOW_MS`; a hit after that
 * opens the next one. Usage past the limit is still counted (as the limiter
 * does), so a client that keeps hammering stays refused until the window ends.
 * Expired windows are dropped by a sweep once a minute, so memory is bounded
 * by the ids seen in the last two minutes.
 */
export const WINDOW_MS = 60_000

export interface MinuteWindow {
  used: number
  /** Date.now() at which this window ends */
  endsAt: number
}

export class MinuteWindows<Id = number> {
  readonly #windows = new Map<Id, MinuteWindow>()

  /** Adds `amount` to the id's current window (opening one if none is open) and returns it. */
  add(id: Id, amount: number, now: number): MinuteWindow {
    const window = this.#windows.get(id)
    if (window !== undefined && window.endsAt > now) {
      window.used += amount
      return window
    }
    const opened = { used: amount, endsAt: now + WINDOW_MS }
    this.#windows.set(id, opened)
    return opened
  }

  /** The id's open window, if any. */
  peek(id: Id, now: number): MinuteWindow | undefined {
    const window = this.#windows.get(id)
    return window !== undefined && window.endsAt > now ? window : undefined
  }

  /** Drops every window that has ended. */
  sweep(now: number) {
    for (const [id, window] of this.#windows) if (window.endsAt <= now) this.#windows.delete(id)
  }

  clear() {
    this.#windows.clear()
  }

  get size() {
    return this.#windows.size
  }
}

/** Whole seconds until a window ends, at least 1 (the Retry-After and x-ratelimit-reset-* value). */
export function secondsLeft(window: MinuteWindow, now: number): number {
  return Math.max(1, Math.ceil((window.endsAt - now) / 1000))
}
