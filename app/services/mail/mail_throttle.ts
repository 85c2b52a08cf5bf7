import limiter from '@adonisjs/limiter/services/main'
import { errors } from '@adonisjs/limiter'

/**
 * Forms that send e-mail to an address someone types (forgotten password,
 * "send the link again"): every request counts, whether or not the address
 * has an account, so the answer says nothing about it. 3 per address and
 * 10 per client IP in 15 minutes; the two forms share the budgets, so
 * nobody fills an inbox by alternating them.
 */
const perAddress = () => limiter.use({ requests: 3, duration: '15 mins', blockDuration: '15 mins' })
const perIp = () => limiter.use({ requests: 10, duration: '15 mins', blockDuration: '15 mins' })

const addressKey = (email: string) => `mail:address:${email.trim().toLowerCase()}`
const ipKey = (ip: string) => `mail:ip:${ip}`

/** Counts one request; the seconds to wait when either budget is spent, else 0. */
export async function mailRequestAttempt(email: string, ip: string): Promise<number> {
  let wait = 0
  for (const [l, key] of [
    [perIp(), ipKey(ip)],
    [perAddress(), addressKey(email)],
  ] as const) {
    try {
      await l.consume(key)
    } catch (error) {
      if (!(error instanceof errors.E_TOO_MANY_REQUESTS)) throw error
      wait = Math.max(wait, error.response.availableIn, 1)
    }
  }
  return wait
}

/** Tests start with fresh counters. */
export async function clearMailThrottles(ip: string, emails: string[] = []) {
  await perIp().delete(ipKey(ip))
  for (const email of emails) await perAddress().delete(addressKey(email))
}
