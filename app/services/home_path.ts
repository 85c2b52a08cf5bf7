import type User from '#models/user'

/** Where an account lands after login: admins in the panel, users in their portal. */
export function homeFor(user: Pick<User, 'role'>) {
  return user.role === 'admin' ? '/admin' : '/dashboard'
}

/** A post-login destination from the session, only if it is a path on this site. */
export function safeNextPath(value: unknown): string | null {
  if (typeof value !== 'string') return null
  if (!value.startsWith('/') || value.startsWith('//') || value.startsWith('/\\')) return null
  return value
}
