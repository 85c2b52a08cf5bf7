import app from '@adonisjs/core/services/app'

/**
 * Writes this process's queued usage rows before a read that must include
 * every call made so far (balances, spend, usage pages, a key edit whose cap
 * starts to reset: rows written later are added by the meter's statement as
 * usual). An ace command has no queue of its own.
 */
export async function settleMetering() {
  const gateway = await app.container.make('gateway')
  await gateway.meter.drain()
}
