/**
 * Sets a memoised value in a map bounded to `limit` entries, forgetting the
 * oldest first (Map keeps insertion order). For lookups keyed by names the
 * client chooses (model names): past the bound, a flood of new names pushes
 * out only the oldest entries, never the whole map (the names in use are
 * looked up again at once and go back in at the young end).
 */
export function rememberBounded<K, V>(memo: Map<K, V>, key: K, value: V, limit: number) {
  if (memo.size >= limit) {
    for (const oldest of memo.keys()) {
      memo.delete(oldest)
      if (memo.size < limit) break
    }
  }
  memo.set(key, value)
}
