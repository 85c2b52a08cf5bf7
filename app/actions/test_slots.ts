/**
 * Places for channel tests shared by several Test all runs: a run takes one
 * before each upstream call and gives it back after, so runs started at
 * once (LiteLLM's /health polled for different models) make at most `size`
 * upstream calls together instead of `size` each. Waiters are served in order.
 */
export class TestSlots {
  #free: number
  #waiting: Array<() => void> = []

  constructor(size: number) {
    this.#free = Math.max(1, size)
  }

  acquire(): Promise<void> {
    if (this.#free > 0) {
      this.#free--
      return Promise.resolve()
    }
    return new Promise((resolve) => this.#waiting.push(resolve))
  }

  release() {
    const next = this.#waiting.shift()
    if (next) next()
    else this.#free++
  }
}
