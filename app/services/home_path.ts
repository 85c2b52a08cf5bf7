import type User from '#models/user'

/** Where an account lands after login: admins in the panel, users in their portal. */
export function homeFor(user: Pick<User, 'role'>) {
  return user.role === 'admin' ? '/admin' : '/dashboard'
}

/**
 * A redirect target from the session or a Referer, only if it is a path on
 * this site: not //host or /\host (browsers read both as another site), and
 * no control characters or spaces (browsers drop a tab or newline from a
 * URL: "/<tab>/evil.com" would become //evil.com).
 */
export function safeNextPath(value: unknown): string | null {
  if (typeof value !== 'string') return null
  if (/[\u0000-\u0020\u007f]/.test(value)) return null
  if (!value.startsWith('/') || value.startsWith('//') || value.startsWith('/\\')) return null
  return value
}
