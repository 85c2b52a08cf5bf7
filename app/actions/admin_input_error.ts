/** An admin action refused its input (unknown user, duplicate name...): shown to the operator as is. */
export class AdminInputError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'AdminInputError'
  }
}
