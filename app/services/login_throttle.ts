import limiter from '@adonisjs/limiter/services/main'

/**
 * Failed logins are counted per email and per client IP; once either budget
 * is spent, logins for it are refused until the window passes. A success
 * clears the email's count.
 */
const perEmail = () => limiter.use({ requests: 5, duration: '15 mins', blockDuration: '15 mins' })
const perIp = () => limiter.use({ requests: 20, duration: '15 mins', blockDuration: '15 mins' })

const emailKey = (email: string) => `login:email:${email.toLowerCase()}`
const ipKey = (ip: string) => `login:ip:${ip}`

/** Seconds until this email/IP may try again; 0 when allowed now. */
export async function loginWait(email: string, ip: string): Promise<number> {
  let wait = 0
  for (const [l, key] of [
    [perEmail(), emailKey(email)],
    [perIp(), ipKey(ip)],
  ] as const) {
    if ((await l.remaining(key)) <= 0) wait = Math.max(wait, await l.availableIn(key), 1)
  }
  return wait
}

export async function recordFailedLogin(email: string, ip: string) {
  await perEmail().increment(emailKey(email))
  await perIp().increment(ipKey(ip))
}

export async function clearFailedLogins(email: string) {
  await perEmail().delete(emailKey(email))
}
