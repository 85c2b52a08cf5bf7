import app from '@adonisjs/core/services/app'
import db from '@adonisjs/lucid/services/db'
import { AdminInputError } from '#actions/admin_input_error'
import { writeAudit, type Actor } from '#actions/audit'
import { GatewayError } from '#exceptions/gateway_error'
import { NEVER } from '#gateway/batches/upstream_calls'
import { findBatch } from '#services/batch_pages'

/**
 * Cancels a running batch (OpenAI's, Anthropic's or Gemini's) through the same
 * service code as the API's cancel (BatchService.cancel: the upstream's
 * cancel, then its answer settled, a batch that has ended billed once, its
 * hold released), then writes the audit row. The cancel happens upstream,
 * where no transaction reaches: the audit row follows it, written only when
 * the upstream took the cancel.
 *
 * Refused (AdminInputError, shown beside the button): a batch already billed
 * or no longer running, or the upstream's refusal in its own words. `ownerId`
 * (the portal): another user's batch is not there (not found).
 */
export async function cancelBatch(id: number, actor: Actor, ownerId?: number) {
  const found = await findBatch(id)
  if (!found || (ownerId !== undefined && found.summary.userId !== ownerId)) throw AdminInputError.notFound(`No batch ${id}`)
  const { summary, row } = found
  if (!summary.cancellable) {
    throw new AdminInputError(
      summary.billedAt
        ? `Batch ${summary.publicId} has ended and is billed: nothing to cancel`
        : `Batch ${summary.publicId} is ${summary.status}: a cancel is only asked of a running batch`
    )
  }
  const gateway = await app.container.make('gateway')
  let upstream: Record<string, any>
  try {
    // No client to wait for: the channel's own timeouts bound the call, as the sweep's.
    upstream = await gateway.batches.cancel(row, NEVER)
  } catch (error) {
    if (error instanceof GatewayError) throw new AdminInputError(`The upstream did not cancel batch ${summary.publicId}: ${error.message}`)
    throw error
  }
  const status = String(upstream.processing_status ?? upstream.status ?? upstream.metadata?.state ?? row.status)
  const kind = summary.kind === 'anthropic' ? 'Anthropic message batch' : summary.kind === 'google' ? 'Gemini batch' : 'OpenAI batch'
  await db.transaction(async (trx) => {
    await writeAudit(trx, actor, {
      action: 'batch.cancel',
      subjectType: 'batch',
      subjectId: summary.id,
      summary: `${kind} ${summary.publicId} of ${summary.ownerEmail ?? `user ${summary.userId}`} (${summary.model ?? 'no model'}) cancelled: ${summary.status} → ${status}`,
      before: { status: summary.status },
      after: { status },
    })
  })
  return { summary, status, billed: row.billed_at !== null }
}
