/**
 * Places for channel tests shared by several Test all runs: a run takes one
 * before each upstream call and gives it back after, so runs started at
 * once (LiteLLM's /health polled for different models) make at most `size`
 * upstream calls together instead of `size` each. Waiters are served in
 * order; one that reaches its deadline first leaves the line (its run's
 * budget is spent: it skips the channel rather than wait for other runs).
 */
export class TestSlots {
  #free: number
  #waiting: Array<(got: boolean) => void> = []

  constructor(size: number) {
    this.#free = Math.max(1, size)
  }

  /** A place (true), or false when none came free before `deadline` (epoch ms); give a place back with release() */
  acquire(deadline: number): Promise<boolean> {
    if (this.#free > 0) {
      this.#free--
      return Promise.resolve(true)
    }
    const wait = deadline - Date.now()
    if (wait <= 0) return Promise.resolve(false)
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        const at = this.#waiting.indexOf(take)
        if (at >= 0) this.#waiting.splice(at, 1)
        resolve(false)
      }, wait)
      const take = (got: boolean) => {
        clearTimeout(timer)
        resolve(got)
      }
      this.#waiting.push(take)
    })
  }

  release() {
    const next = this.#waiting.shift()
    if (next) next(true)
    else this.#free++
  }
}
