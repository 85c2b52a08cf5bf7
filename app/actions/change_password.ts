import hash from '@adonisjs/core/services/hash'
import type User from '#models/user'
import { PortalInputError } from '#actions/portal_input_error'
import { endOtherSessions } from '#services/session_epoch'

/** Changes a user's own password after checking the current one (hashing is the model's job). */
export async function changePassword(user: User, currentPassword: string, newPassword: string) {
  // An account made by a single sign-on has no password: no typed one is right.
  if (!user.password || !(await hash.use('scrypt').verify(user.password, currentPassword))) throw new PortalInputError('wrong_password', 'current_password')
  user.password = newPassword
  // Every other session of the account ends (the caller keeps its own).
  endOtherSessions(user)
  await user.save()
  return user
}
