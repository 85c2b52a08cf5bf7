import { GatewayError } from '#exceptions/gateway_error'
import { collectItems, type ResponseStore } from '#gateway/responses_store/response_store'

/**
 * Responses' `item_reference` input items (`{"type": "item_reference", "id"}`:
 * an earlier output item sent back by id, as the AI SDK and OpenAI's Agents
 * SDK do with `store` on), for translated channels, which cannot resolve
 * them: each becomes the stored item it names. Responses-native channels get
 * them as sent (their upstream holds the items).
 */

/** The 400 for a reference to an item the gateway does not hold (OpenAI's words for an unknown item) */
export function itemNotFound(id: string, why = ''): GatewayError {
  return GatewayError.invalidRequest(`Item with id '${id.slice(0, 128)}' not found.${why}`, 'item_not_found', 'input')
}

/**
 * Output item ids the gateway mints name their response: `msg_resp_<48 hex>_<n>`
 * (a whole answer: encodeResponsesResponse, the stored id as the response id)
 * or `msg_<48 hex>_<n>` (a stream: the stream encoder), `rs_`/`fc_` alike.
 */
const MINTED_ITEM = /^(?:msg|rs|fc)_(?:resp_)?([0-9a-f]{48})_\d+$/

/** The stored response a gateway-minted item id belongs to, or null (another id: a client's, an upstream's) */
export function responseOfItem(itemId: string): string | null {
  const match = MINTED_ITEM.exec(itemId)
  return match ? `resp_${match[1]}` : null
}

/**
 * The items the ids name, by id, among this user's stored responses: first
 * in `input` itself (a follow-up's conversation, read already from the
 * chain), then in the responses minted ids name (memory, the queue, the rest
 * in one read by key), then in the inputs of the user's latest responses
 * (one read: ids the client gave). Ids not found are absent from the map.
 */
export async function findReferencedItems(store: ResponseStore, ids: string[], userId: number, input: unknown[]): Promise<Map<string, unknown>> {
  const wanted = new Set(ids)
  const found = new Map<string, unknown>()
  collectItems(found, wanted, input)
  const named = new Set<string>()
  for (const id of wanted) {
    const responseId = found.has(id) ? null : responseOfItem(id)
    if (responseId !== null) named.add(responseId)
  }
  if (named.size > 0) {
    for (const response of await store.findMany([...named], userId)) {
      if (response.kind === 'gateway') collectItems(found, wanted, response.outputItems, response.inputItems)
    }
  }
  if (found.size < wanted.size) {
    const rest = new Set([...wanted].filter((id) => !found.has(id)))
    for (const [id, item] of await store.findItems(rest, userId)) found.set(id, item)
  }
  return found
}

/**
 * Refuses references that would make the request larger than a body may be
 * (`limit`): a small body naming one big stored item thousands of times
 * would otherwise be built whole in memory (gigabytes, or past the longest
 * string) and sent upstream. Each distinct item is measured once.
 */
export function assertReferencesFit(input: unknown[], found: Map<string, unknown>, bodyBytes: number, limit: number) {
  const sizes = new Map<string, number>()
  let bytes = bodyBytes
  for (const item of input) {
    const ref = item as { type?: unknown; id?: unknown } | null
    if (ref?.type !== 'item_reference') continue
    const id = String(ref.id)
    let size = sizes.get(id)
    if (size === undefined) sizes.set(id, (size = JSON.stringify(found.get(id) ?? null).length))
    bytes += size
    if (bytes > limit) {
      const error = new GatewayError(413, 'request_too_large', 'The items the input references make it larger than a request body may be; send fewer references')
      error.param = 'input'
      throw error
    }
  }
}

/** The input with each reference replaced by the item it names (a new array; `found` holds them all) */
export function withReferencedItems(input: unknown[], found: Map<string, unknown>): unknown[] {
  return input.map((item) => {
    const ref = item as { type?: unknown; id?: unknown } | null
    return ref?.type === 'item_reference' && found.has(String(ref.id)) ? found.get(String(ref.id)) : item
  })
}
