/**
 * An admin action refused its input (unknown user, duplicate name...): shown
 * to the operator as is; on a panel form, beside `field` when given. The
 * management API answers 404 for `kind: 'not_found'`, 409 for `conflict`,
 * else 400.
 */
export class AdminInputError extends Error {
  kind: 'invalid' | 'not_found' | 'conflict' = 'invalid'

  constructor(
    message: string,
    public field?: string
  ) {
    super(message)
    this.name = 'AdminInputError'
  }

  /** What the action was asked to act on does not exist. */
  static notFound(message: string) {
    const error = new AdminInputError(message)
    error.kind = 'not_found'
    return error
  }

  /** The request clashes with one already made (an idempotency key reused for other input). */
  static conflict(message: string) {
    const error = new AdminInputError(message)
    error.kind = 'conflict'
    return error
  }
}
