/**
 * Runs `each` over `items`, at most `atOnce` at a time, in order of start
 * (the sweeps and lists that ask an upstream about many rows: a few calls in
 * flight, never one per row at once). `goOn`, asked before each start, stops
 * the run early (a deadline, an abort): items not started are left alone.
 * `each` should not throw; one that does rejects the run as Promise.all does.
 */
export async function eachAtMost<T>(items: readonly T[], atOnce: number, each: (item: T, index: number) => Promise<void>, goOn: () => boolean = () => true): Promise<void> {
  let next = 0
  const worker = async () => {
    while (next < items.length && goOn()) {
      const index = next++
      await each(items[index], index)
    }
  }
  await Promise.all(Array.from({ length: Math.min(atOnce, items.length) }, worker))
}
