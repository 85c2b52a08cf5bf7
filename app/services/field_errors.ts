/**
 * A refused form's field errors (the flash's `inputErrorsBag`: field name ->
 * messages) are said once: beside the field when the page renders it, at
 * the top of the page when it does not (a form posted from another page, a
 * button with no field, a validator naming a field the form calls
 * otherwise), so no message is lost and none is said twice.
 *
 * Decided per page render, not per route: the shell
 * (components/layouts/app.edge) calls `begin`, renders the page (every
 * form/field.edge takes its messages through `beside`, which notes them as
 * shown), then the flash (components/flash.edge) asks `notBeside` for the
 * rest. The record hangs off the request's flash store (one per request, a
 * WeakMap: nothing kept once the request is gone) and `begin` clears it for
 * each page.
 */

/** What the templates see of the flash store (the session's read-only values). */
interface FlashStore {
  get(key: string, defaultValue?: unknown): any
}

type Bag = Record<string, string[] | string>

const shown = new WeakMap<object, Set<string>>()

function bagOf(flash: FlashStore | undefined | null): Bag {
  const bag = flash ? flash.get('inputErrorsBag', {}) : {}
  return bag && typeof bag === 'object' ? (bag as Bag) : {}
}

function messages(value: string[] | string) {
  return Array.isArray(value) ? value : [value]
}

export const fieldErrors = {
  /** A page starts rendering: no field error said beside its field yet. */
  begin(flash: FlashStore | undefined | null) {
    if (flash) shown.set(flash, new Set())
    return ''
  },

  /**
   * The messages of field `name` (its own key, or `name.0`, `name.x` for a
   * list's entries), noted as said beside it.
   */
  beside(flash: FlashStore | undefined | null, name: string): string[] {
    const found: string[] = []
    if (!flash) return found
    for (const [key, value] of Object.entries(bagOf(flash))) {
      if (key !== name && !key.startsWith(name + '.')) continue
      found.push(...messages(value))
      let keys = shown.get(flash)
      if (!keys) shown.set(flash, (keys = new Set()))
      keys.add(key)
    }
    return found
  },

  /** The messages no rendered field said, in the bag's order. */
  notBeside(flash: FlashStore | undefined | null): string[] {
    const keys = flash ? shown.get(flash) : undefined
    return Object.entries(bagOf(flash))
      .filter(([key]) => !keys?.has(key))
      .flatMap(([, value]) => messages(value))
  },

  /** Whether some message was said beside its field (the top then says only that the form was not saved). */
  anyBeside(flash: FlashStore | undefined | null): boolean {
    return !!flash && (shown.get(flash)?.size ?? 0) > 0
  },
}
