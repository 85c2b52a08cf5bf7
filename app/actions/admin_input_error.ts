/**
 * An admin action refused its input (unknown user, duplicate name...): shown
 * to the operator as is; on a panel form, beside `field` when given.
 */
export class AdminInputError extends Error {
  constructor(
    message: string,
    public field?: string
  ) {
    super(message)
    this.name = 'AdminInputError'
  }
}
