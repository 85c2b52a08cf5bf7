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

/**
 * The second step of a sign-in with two-factor on: wrong codes are counted
 * per account (5 per 15 minutes, whatever IP or session they come from, so
 * typing the password again does not buy more guesses) and against the
 * client IP's login budget. A right code clears the account's count.
 */
const perAccount = () => limiter.use({ requests: 5, duration: '15 mins', blockDuration: '15 mins' })
const codeKey = (userId: number) => `login:2fa:${userId}`

/** Seconds until this account/IP may try a code again; 0 when allowed now. */
export async function twoFactorWait(userId: number, ip: string): Promise<number> {
  let wait = 0
  for (const [l, key] of [
    [perAccount(), codeKey(userId)],
    [perIp(), ipKey(ip)],
  ] as const) {
    if ((await l.remaining(key)) <= 0) wait = Math.max(wait, await l.availableIn(key), 1)
  }
  return wait
}

export async function recordFailedTwoFactor(userId: number, ip: string) {
  await perAccount().increment(codeKey(userId))
  await perIp().increment(ipKey(ip))
}

export async function clearFailedTwoFactor(userId: number) {
  await perAccount().delete(codeKey(userId))
}

/** Tests start with fresh counters: the IP's login budget and these accounts' code counts. */
export async function clearLoginThrottles(ip: string, userIds: number[] = []) {
  await perIp().delete(ipKey(ip))
  for (const id of userIds) await perAccount().delete(codeKey(id))
}
