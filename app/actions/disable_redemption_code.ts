import db from '@adonisjs/lucid/services/db'
import RedemptionCode from '#models/redemption_code'
import { AdminInputError } from '#actions/admin_input_error'
import { cliActor, writeAudit, type Actor } from '#actions/audit'

/**
 * Disables unused codes (one, or every unused code of a batch): a leaked or
 * mistaken code can no longer be redeemed. A redeemed code is history and
 * stays as it is. Returns how many codes were disabled.
 */
export async function disableRedemptionCodes(target: { id: number } | { batch: string }, actor: Actor = cliActor()) {
  return db.transaction(async (trx) => {
    const query = trx.from('redemption_codes').whereNull('redeemed_at').whereNull('disabled_at')
    if ('id' in target) {
      const code = await RedemptionCode.find(target.id, { client: trx })
      if (!code) throw AdminInputError.notFound(`No redemption code #${target.id}`)
      query.where('id', target.id)
    } else {
      query.where('batch', target.batch)
    }
    const disabled = (await query.update({ disabled_at: new Date() }).returning(['id', 'hint', 'batch'])) as Array<{
      id: number
      hint: string
      batch: string
    }>
    if (disabled.length) {
      await writeAudit(trx, actor, {
        action: 'redemption.disable',
        subjectType: 'id' in target ? 'redemption_code' : 'redemption_batch',
        subjectId: 'id' in target ? target.id : null,
        summary:
          'id' in target
            ? `redemption code ${disabled[0].hint} (batch "${disabled[0].batch}") disabled`
            : `${disabled.length} unused redemption code${disabled.length === 1 ? '' : 's'} of batch "${target.batch}" disabled`,
      })
    }
    return disabled.length
  })
}
