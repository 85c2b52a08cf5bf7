import { randomBytes } from 'node:crypto'
import User, { type UserRole } from '#models/user'
import Plan from '#models/plan'
import { AdminInputError } from '#actions/admin_input_error'

export interface CreateUserInput {
  email: string
  password?: string
  role?: UserRole
  plan?: string
}

/** Creates a user; a password is generated when none is given (returned once). */
export async function createUser(input: CreateUserInput) {
  if (await User.findBy('email', input.email)) {
    throw new AdminInputError(`A user with email ${input.email} already exists`)
  }
  let planId: number | null = null
  if (input.plan) {
    const plan = await Plan.findBy('name', input.plan)
    if (!plan) throw new AdminInputError(`No plan named "${input.plan}"`)
    planId = plan.id
  } else {
    planId = (await Plan.findBy('name', 'default'))?.id ?? null
  }
  const password = input.password ?? randomBytes(12).toString('base64url')
  const user = await User.create({ email: input.email, password, role: input.role ?? 'user', planId })
  return { user, password: input.password ? null : password }
}
