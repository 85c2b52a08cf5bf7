/**
 * A cache's reload that concurrent callers share: a call made while one is
 * out gets that one, and one more read follows it (its read may predate the
 * change the caller was told of). For the policies loaded whole into memory
 * (end users, teams), reloaded on change notices and when stale.
 */
export class SharedReload {
  #loading: Promise<void> | null = null
  #again = false

  constructor(private load: () => Promise<void>) {}

  /** A read is out now */
  get running(): boolean {
    return this.#loading !== null
  }

  run(): Promise<void> {
    if (this.#loading) {
      this.#again = true
      return this.#loading
    }
    this.#loading = this.load()
      .finally(() => {
        this.#loading = null
      })
      .then(() => {
        if (!this.#again) return
        this.#again = false
        return this.run()
      })
    return this.#loading
  }
}
