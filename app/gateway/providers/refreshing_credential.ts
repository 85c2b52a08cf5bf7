/**
 * A credential the gateway fetches for itself (an instance role's keys, a
 * metadata server's access token) and keeps for the whole process: used
 * until `marginMs` before it expires, so a request normally finds it ready
 * (fresh(), synchronous); when it is not, every request waiting shares the
 * one fetch in flight (get()). A credential without an expiry (a static key
 * read from a file) is kept until forget().
 *
 * A refresh that fails while the held credential has not yet expired hands
 * back the held one (it still works; AWS and Google hand out new ones well
 * before the old ones lapse) and the next request tries again; once it has
 * expired, the failure is the caller's: the request's attempt fails with it.
 */
export interface Expiring<T> {
  value: T
  /** Epoch ms; null: it does not expire */
  expiresAt: number | null
}

/** A credential that came already expired is not fetched again sooner than this */
const MIN_REUSE_MS = 5_000

/** How close to its expiry a held credential still serves when its refresh failed */
const STILL_VALID_MS = 30_000

export class RefreshingCredential<T> {
  #value: T | null = null
  #expiresAt: number | null = null
  #freshUntil = 0
  #loading: Promise<T> | null = null

  constructor(
    private load: () => Promise<Expiring<T>>,
    private marginMs: number,
    private onStale: (error: Error) => void = () => {}
  ) {}

  /** The credential when it is fresh; null: call get(). */
  fresh(): T | null {
    return this.#value !== null && this.#freshUntil > Date.now() ? this.#value : null
  }

  /** The credential held, fresh or not (what error texts must not repeat) */
  held(): T | null {
    return this.#value
  }

  /** A fresh credential: the held one, the fetch in flight, or a new fetch. */
  get(): Promise<T> {
    const fresh = this.fresh()
    if (fresh !== null) return Promise.resolve(fresh)
    if (this.#loading) return this.#loading
    this.#loading = this.load()
      .then(
        ({ value, expiresAt }) => {
          this.#value = value
          this.#expiresAt = expiresAt
          // A lifetime no longer than the margin is used for half of it, not fetched again on every request;
          // one already over (a clock off, a broken source) for MIN_REUSE_MS: every request would fetch again.
          const now = Date.now()
          const lifetime = expiresAt === null ? Infinity : expiresAt - now
          this.#freshUntil =
            lifetime === Infinity ? Infinity : lifetime > this.marginMs ? expiresAt! - this.marginMs : now + (lifetime > 0 ? lifetime / 2 : MIN_REUSE_MS)
          return value
        },
        (error: Error) => {
          if (this.#value !== null && this.#expiresAt !== null && this.#expiresAt - STILL_VALID_MS > Date.now()) {
            this.onStale(error)
            return this.#value
          }
          throw error
        }
      )
      .finally(() => {
        this.#loading = null
      })
    return this.#loading
  }

  /** Drops the held credential (tests; a configuration read again). */
  forget() {
    this.#value = null
    this.#expiresAt = null
    this.#freshUntil = 0
  }
}
