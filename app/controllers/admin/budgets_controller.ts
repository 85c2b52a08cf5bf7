import type { HttpContext } from '@adonisjs/core/http'
import { createBudget, deleteBudget, listBudgets, updateBudget, type BudgetSettings } from '#actions/budgets'
import { panelActor, withFormFields } from '#controllers/admin/panel'

/** The validator's names of the form's fields (a refusal is shown beside the field: withFormFields) */
const FORM_FIELDS = { budgetId: 'budget_id', maxBudget: 'max_budget', budgetPeriod: 'budget_period', rpm: 'rpm', tpm: 'tpm' }

/** Form fields -> the budget actions' settings (empty = none / never). */
function budgetSettings(request: HttpContext['request']): BudgetSettings {
  const text = (name: string) => String(request.input(name) ?? '').trim()
  return {
    maxBudget: text('max_budget') === '' ? null : text('max_budget'),
    budgetPeriod: (text('budget_period') || null) as BudgetSettings['budgetPeriod'],
    rpm: text('rpm') === '' ? null : (text('rpm') as unknown as number),
    tpm: text('tpm') === '' ? null : (text('tpm') as unknown as number),
  }
}

/**
 * Shared budgets (LiteLLM's /budget/*): one page, a row per budget with its
 * limits and how many end users are linked, an edit form per row and a new
 * budget form. End users link to one on their owner's End users page. The
 * same actions as the management API and LiteLLM's paths (app/actions/budgets.ts);
 * a refused input comes back to the form with the reason (AdminInputError).
 */
export default class BudgetsController {
  /** GET /admin/budgets */
  async index(ctx: HttpContext) {
    return ctx.view.render('admin/budgets/index', { budgets: await listBudgets() })
  }

  /** POST /admin/budgets */
  async store(ctx: HttpContext) {
    const budgetId = String(ctx.request.input('budget_id') ?? '').trim()
    const settings = { ...budgetSettings(ctx.request), budgetId: budgetId === '' ? undefined : budgetId }
    const row = await withFormFields(FORM_FIELDS, () => createBudget(settings, panelActor(ctx)))
    ctx.session.flash('success', `Created budget ${row.budget_id}.`)
    return ctx.response.redirect('/admin/budgets')
  }

  /** POST /admin/budgets/update {budget_id, ...}: every linked end user takes the new limits at once */
  async update(ctx: HttpContext) {
    const id = String(ctx.request.input('budget_id') ?? '')
    const row = await withFormFields(FORM_FIELDS, () => updateBudget(id, budgetSettings(ctx.request), panelActor(ctx)))
    ctx.session.flash('success', `Saved budget ${row.budget_id} (${row.end_users} end users linked).`)
    return ctx.response.redirect('/admin/budgets')
  }

  /** POST /admin/budgets/remove {budget_id}: refused while end users are linked */
  async destroy(ctx: HttpContext) {
    const row = await deleteBudget(String(ctx.request.input('budget_id') ?? ''), panelActor(ctx))
    ctx.session.flash('success', `Deleted budget ${row.budget_id}.`)
    return ctx.response.redirect('/admin/budgets')
  }
}
