import type { HttpContext } from '@adonisjs/core/http'
import db from '@adonisjs/lucid/services/db'
import Plan from '#models/plan'
import { createPlan } from '#actions/create_plan'
import { deletePlan, updatePlan } from '#actions/update_plan'
import { createPlanValidator } from '#validators/admin'
import { checkbox, listField, optionalNumber, panelActor, notFound } from '#controllers/admin/panel'
import { setDefaultPlan } from '#actions/set_default_plan'

/** The "default for new users" checkbox (hidden 0 + checkbox 1). */
const defaultFlag = (request: HttpContext['request']) => checkbox(request.input('isDefault'))

/** Form fields -> the shared plan validator's shape. */
function planData(request: HttpContext['request']) {
  return {
    name: request.input('name') ?? '',
    monthlyInputTokens: optionalNumber(request.input('monthlyInputTokens')) ?? null,
    monthlyOutputTokens: optionalNumber(request.input('monthlyOutputTokens')) ?? null,
    models: listField(request.input('models')),
    rpm: optionalNumber(request.input('rpm')) ?? null,
    tpm: optionalNumber(request.input('tpm')) ?? null,
    priceMultiplier: String(request.input('priceMultiplier') ?? '').trim() || null,
  }
}

/**
 * Channel groups: how many channels each plan reaches. `open`: channels open
 * to every plan; `named`: per plan, the channels limited to plans that name
 * it. A plan reaches open + named of total.
 */
async function channelsOpenToPlans() {
  const [row] = await db.from('channels').select(db.raw('count(*)::int AS total'), db.raw('count(*) FILTER (WHERE plan_ids IS NULL)::int AS open'))
  const named = await db.rawQuery('SELECT unnest(plan_ids) AS plan_id, count(*)::int AS channels FROM channels WHERE plan_ids IS NOT NULL GROUP BY 1')
  return {
    total: Number(row.total),
    open: Number(row.open),
    named: new Map<number, number>(named.rows.map((r: { plan_id: string; channels: number }) => [Number(r.plan_id), r.channels])),
  }
}

export default class PlansController {
  /** Plans with how many users are on each, and how many channels each reaches. */
  async index({ view }: HttpContext) {
    const plans = await Plan.query().orderBy('name')
    const counts = await db.from('users').whereNotNull('plan_id').groupBy('plan_id').select('plan_id').count('* as total')
    const userCounts = new Map(counts.map((row) => [Number(row.plan_id), Number(row.total)]))
    return view.render('admin/plans/index', { plans, userCounts, channelsOpen: await channelsOpenToPlans() })
  }

  async create({ view }: HttpContext) {
    return view.render('admin/plans/form', { plan: null })
  }

  /** Creates a plan. */
  async store(ctx: HttpContext) {
    const input = await createPlanValidator.validate(planData(ctx.request))
    const plan = await createPlan(input, panelActor(ctx))
    if (defaultFlag(ctx.request)) await setDefaultPlan(plan.id, true, panelActor(ctx))
    ctx.session.flash('success', `Plan ${plan.name} created.`)
    return ctx.response.redirect('/admin/plans')
  }

  async edit(ctx: HttpContext) {
    const { params, view } = ctx
    const plan = await Plan.find(Number(params.id))
    if (!plan) return notFound(ctx)
    return view.render('admin/plans/form', { plan })
  }

  /** Saves a plan's name and limits. */
  async update(ctx: HttpContext) {
    const input = await createPlanValidator.validate(planData(ctx.request))
    const plan = await updatePlan(Number(ctx.params.id), input, panelActor(ctx))
    await setDefaultPlan(plan.id, defaultFlag(ctx.request), panelActor(ctx))
    ctx.session.flash('success', `Plan ${plan.name} saved.`)
    return ctx.response.redirect('/admin/plans')
  }

  /** Deletes a plan nobody is on and no channel names. */
  async destroy(ctx: HttpContext) {
    const removed = await deletePlan(Number(ctx.params.id), panelActor(ctx))
    ctx.session.flash('success', `Plan ${removed.name} deleted.`)
    return ctx.response.redirect('/admin/plans')
  }
}
