/**
 * What requests in flight hold against each key's spend cap (pico-USD), by
 * key id. The key's cached record is replaced when it is reloaded (TTL,
 * NOTIFY), so the holds live here, beside it, and survive that; the user's
 * balance holds live on its (kept) state object instead.
 */
const held = new Map<number, bigint>()

export function heldOnKey(keyId: number): bigint {
  return held.get(keyId) ?? 0n
}

export function holdOnKey(keyId: number, pico: bigint) {
  held.set(keyId, heldOnKey(keyId) + pico)
}

export function releaseOnKey(keyId: number, pico: bigint) {
  const left = heldOnKey(keyId) - pico
  if (left > 0n) held.set(keyId, left)
  else held.delete(keyId)
}
