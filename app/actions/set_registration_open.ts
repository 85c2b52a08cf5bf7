import db from '@adonisjs/lucid/services/db'
import { writeAudit, type Actor } from '#actions/audit'
import { getSetting, putSetting } from '#services/app_settings'

/**
 * The panel's "registration open" switch (ALLOW_REGISTRATION=false still wins,
 * see registrationOpen). Audited with the change in one transaction, only when
 * it changes: who opened sign-ups to the world is worth knowing.
 */
export async function setRegistrationOpenBy(open: boolean, actor: Actor) {
  await db.transaction(async (trx) => {
    // Locks the row when there is one; two admins flipping it at once each see the other's result.
    await trx.table('app_settings').insert({ key: 'registration_open', value: JSON.stringify(true), updated_at: new Date() }).onConflict('key').ignore()
    await trx.from('app_settings').where('key', 'registration_open').forUpdate().first()
    const before = await getSetting('registration_open', true, trx)
    if (before === open) return
    await putSetting('registration_open', open, trx)
    await writeAudit(trx, actor, {
      action: 'settings.registration',
      subjectType: 'settings',
      subjectId: null,
      summary: open ? 'Self-service registration opened' : 'Self-service registration closed',
      before: { open: before },
      after: { open },
    })
  })
}
