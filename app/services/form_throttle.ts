import limiter from '@adonisjs/limiter/services/main'
import { errors } from '@adonisjs/limiter'

/**
 * Throttles for the portal's forms: registrations per client IP, password
 * changes per user, 5 attempts per 10 minutes. The limiter's store is the
 * gateway's (memory, or Postgres when instances share it).
 */
const WINDOW = { requests: 5, duration: '10 minutes', blockDuration: '10 minutes' } as const
const formLimiter = () => limiter.use(WINDOW)

/** Counts an attempt; returns the seconds to wait when over the limit, else 0. */
async function attempt(key: string): Promise<number> {
  try {
    await formLimiter().consume(key)
    return 0
  } catch (error) {
    if (error instanceof errors.E_TOO_MANY_REQUESTS) return Math.max(1, error.response.availableIn)
    throw error
  }
}

export const registrationAttempt = (ip: string) => attempt(`register_${ip}`)
export const passwordChangeAttempt = (userId: number) => attempt(`password_${userId}`)

/**
 * Redeeming a prepaid code: only failed attempts count (a user redeeming a
 * stack of valid codes is never held up), 5 per 10 minutes per user, so a
 * code cannot be guessed by trying. Runs `redeem` unless the user is held;
 * a refusal it throws is counted and rethrown; a success clears the count.
 */
export async function throttledRedeem<T>(userId: number, redeem: () => Promise<T>): Promise<{ wait: number; result?: T }> {
  const [error, result] = await formLimiter().penalize(`redeem_${userId}`, redeem)
  if (error) return { wait: Math.max(1, error.response.availableIn) }
  return { wait: 0, result: result as T }
}

/**
 * The portal's two-factor forms (confirm, turn off, new recovery codes):
 * wrong codes or passwords count, 5 per 10 minutes per user, shared by the
 * three forms; a success clears the count. Same contract as throttledRedeem.
 */
export async function throttledTwoFactor<T>(userId: number, run: () => Promise<T>): Promise<{ wait: number; result?: T }> {
  const [error, result] = await formLimiter().penalize(`2fa_${userId}`, run)
  if (error) return { wait: Math.max(1, error.response.availableIn) }
  return { wait: 0, result: result as T }
}

/** Tests start each case with fresh counters. */
export async function clearFormThrottles(ip: string, userIds: number[] = []) {
  await formLimiter().delete(`register_${ip}`)
  for (const id of userIds) {
    await formLimiter().delete(`password_${id}`)
    await formLimiter().delete(`redeem_${id}`)
    await formLimiter().delete(`2fa_${id}`)
  }
}
