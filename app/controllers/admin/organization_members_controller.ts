import type { HttpContext } from '@adonisjs/core/http'
import i18nManager from '@adonisjs/i18n/services/main'
import { errors as vineErrors } from '@vinejs/vine'
import { addOrganizationMembers, removeOrganizationMember, updateOrganizationMember } from '#actions/organizations'
import { AdminInputError } from '#actions/admin_input_error'
import { panelActor } from '#controllers/admin/panel'
import { recordId } from '#services/record_id'

/**
 * An organization's members on its page (/admin/organizations/{id}/edit,
 * "Members"): add by e-mail with a LiteLLM role, change a member's role,
 * take one out. The same actions as LiteLLM's /organization/member_add,
 * member_update, member_delete and the management API
 * (app/actions/organizations.ts), audited as the signed-in admin.
 *
 * A refusal goes back to the members section, said beside its field: the
 * add form's `user` / `role`, or a member's own row (`member.{userId}`) for
 * a change or a removal, with only the add form's input kept (a row's
 * posted role would otherwise refill the add form's select).
 */
export default class OrganizationMembersController {
  /** POST /admin/organizations/:id/members {user (e-mail or id), role}: an existing member gets the role. */
  async store(ctx: HttpContext) {
    const user = String(ctx.request.input('user') ?? '').trim()
    const role = ctx.request.input('role') || undefined
    try {
      const { org, added } = await addOrganizationMembers(ctx.params.id, [{ user, role }], panelActor(ctx))
      ctx.session.flash('success', `${added[0].email} is in organization ${org.alias} as ${added[0].role}.`)
    } catch (error) {
      refused(ctx, error, (field) => field)
      ctx.session.flashOnly(['user', 'role'])
    }
    return ctx.response.redirect(membersOf(ctx))
  }

  /** POST /admin/organizations/:id/members/role {user (id), role} */
  async update(ctx: HttpContext) {
    const user = memberRef(ctx)
    try {
      const { org, member } = await updateOrganizationMember(ctx.params.id, user, ctx.request.input('role'), panelActor(ctx))
      ctx.session.flash('success', `${member.email} is now ${member.role} in organization ${org.alias}.`)
    } catch (error) {
      refused(ctx, error, () => `member.${user}`)
    }
    return ctx.response.redirect(membersOf(ctx))
  }

  /** POST /admin/organizations/:id/members/remove {user (id)}: their teams and keys stay. */
  async destroy(ctx: HttpContext) {
    const user = memberRef(ctx)
    try {
      const { org, member } = await removeOrganizationMember(ctx.params.id, user, panelActor(ctx))
      ctx.session.flash('success', `${member.email} left organization ${org.alias}.`)
    } catch (error) {
      refused(ctx, error, () => `member.${user}`)
    }
    return ctx.response.redirect(membersOf(ctx))
  }
}

/** A row's member: the user id it posts (digits only; anything else is no user: refused by the action). */
function memberRef(ctx: HttpContext) {
  return String(recordId(ctx.request.input('user')) ?? '')
}

/** The organization's page at its members; the id as digits only (it is written into a Location header). */
function membersOf(ctx: HttpContext) {
  return `/admin/organizations/${recordId(ctx.params.id) ?? 0}/edit#members`
}

/**
 * Flashes a refusal: a validator's messages and an action's refusal naming
 * a field go to the field `fieldFor` names (said beside it, the top saying
 * only that the form was not saved); an action's other refusals (no such
 * organization, not a member) at the top. Anything else is rethrown.
 */
function refused(ctx: HttpContext, error: unknown, fieldFor: (field: string) => string) {
  const bag: Record<string, string[]> = {}
  if (error instanceof vineErrors.E_VALIDATION_ERROR) {
    for (const m of error.messages as Array<{ field: string; message: string }>) (bag[fieldFor(m.field)] ??= []).push(m.message)
  } else if (error instanceof AdminInputError && error.field) {
    bag[fieldFor(error.field)] = [error.message]
  } else if (error instanceof AdminInputError) {
    ctx.session.flash('error', error.message)
    return
  } else {
    throw error
  }
  ctx.session.flash('inputErrorsBag', bag)
  ctx.session.flash('errorsBag', { E_VALIDATION_ERROR: i18nManager.locale(i18nManager.defaultLocale).t('errors.E_VALIDATION_ERROR') })
}
