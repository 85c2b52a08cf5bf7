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

/** Tests start each case with fresh counters. */
export async function clearFormThrottles(ip: string, userIds: number[] = []) {
  await formLimiter().delete(`register_${ip}`)
  for (const id of userIds) await formLimiter().delete(`password_${id}`)
}
