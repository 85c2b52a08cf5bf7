import db from '@adonisjs/lucid/services/db'
import { AdminInputError } from '#actions/admin_input_error'
import { cliActor, writeAudit, type Actor } from '#actions/audit'
import { globMatches, isGlob } from '#gateway/glob'

/**
 * Sets the fallbacks of a model or glob (replacing its list): the models to
 * try, in order, when every channel of the model fails. Fallbacks are model
 * names (not globs), none matching the pattern itself (a model never falls
 * back onto itself). The gateway's cache hears of it through NOTIFY.
 */
export async function setModelFallbacks(input: { model: string; fallbacks: string[] }, actor: Actor = cliActor()) {
  const fallbacks = [...new Set(input.fallbacks.map((m) => m.trim()).filter(Boolean))]
  if (fallbacks.length === 0) throw new AdminInputError('Give at least one fallback model', 'fallbacks')
  for (const model of fallbacks) {
    if (isGlob(model)) throw new AdminInputError(`A fallback is one model, not a glob: "${model}"`, 'fallbacks')
    if (globMatches(input.model, model)) {
      throw new AdminInputError(`"${model}" is matched by "${input.model}" itself: it cannot be its fallback`, 'fallbacks')
    }
  }
  return db.transaction(async (trx) => {
    const before = await trx.from('model_fallbacks').where('model_pattern', input.model).first()
    await trx
      .table('model_fallbacks')
      .insert({ model_pattern: input.model, fallbacks: JSON.stringify(fallbacks), updated_at: new Date() })
      .onConflict('model_pattern')
      .merge(['fallbacks', 'updated_at'])
    await writeAudit(trx, actor, {
      action: 'fallback.set',
      subjectType: 'model_fallback',
      subjectId: null,
      summary: `fallbacks of ${input.model}: ${fallbacks.join(' → ')}`,
      before: before ? { model: input.model, fallbacks: before.fallbacks } : null,
      after: { model: input.model, fallbacks },
    })
    return { model: input.model, fallbacks }
  })
}

/** Removes a model's fallbacks. */
export async function removeModelFallbacks(model: string, actor: Actor = cliActor()) {
  return db.transaction(async (trx) => {
    const removed = await trx.from('model_fallbacks').where('model_pattern', model).delete().returning('fallbacks')
    if (removed.length === 0) throw AdminInputError.notFound(`No fallbacks set for "${model}"`)
    await writeAudit(trx, actor, {
      action: 'fallback.remove',
      subjectType: 'model_fallback',
      subjectId: null,
      summary: `fallbacks of ${model} removed`,
      before: { model, fallbacks: removed[0].fallbacks },
    })
  })
}
