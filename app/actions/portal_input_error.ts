/**
 * A portal action refused the user's input. `code` names the message in
 * resources/lang/<locale>/errors.json (the page shows it in the visitor's
 * language) and `field` the form field it belongs to.
 */
export class PortalInputError extends Error {
  constructor(
    readonly code: string,
    readonly field: string | null = null,
    /** Values the message names ({min}, {max}...) */
    readonly params: Record<string, string | number> = {}
  ) {
    super(code)
    this.name = 'PortalInputError'
  }
}
