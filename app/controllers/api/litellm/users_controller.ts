import type { HttpContext } from '@adonisjs/core/http'
import vine from '@vinejs/vine'
import { wholeNumberField } from '#validators/whole_number_field'
import db from '@adonisjs/lucid/services/db'
import User from '#models/user'
import Plan from '#models/plan'
import ApiKey from '#models/api_key'
import { createUser } from '#actions/create_user'
import { updateUser } from '#actions/update_user'
import { createApiKey } from '#actions/issue_api_key'
import { findUser } from '#actions/post_ledger_entry'
import { AdminInputError } from '#actions/admin_input_error'
import { createKeyValidator, createUserValidator } from '#validators/admin'
import { apiActor, numberAsText } from '#services/management_api'
import { settleMetering } from '#services/settle_metering'
import { teamMembers, teamsOfUser } from '#actions/teams'
import { litellmTeamJson } from '#services/litellm_teams'
import { fieldError, litellmKeyJson, litellmManaged, litellmUserJson, modelGlobs, roleOf } from '#services/litellm_management'

const listValidator = vine.compile(
  vine.object({
    page: wholeNumberField().min(1).max(100_000).optional(),
    page_size: wholeNumberField().min(1).max(100).optional(),
  })
)

/** A user's keys /user/info lists at most (newest first) */
const INFO_KEYS = 100

/** The user a LiteLLM `user_id` (our id or the e-mail) or `user_email` names */
function userRef(body: Record<string, any>): string {
  const ref = numberAsText(body.user_id ?? body.user_email)
  if (typeof ref !== 'string' || ref.trim() === '') throw fieldError('user_id', 'required: the user\'s id or e-mail')
  return ref.trim()
}

async function planName(planId: number | null) {
  return planId === null ? null : ((await Plan.find(planId))?.name ?? null)
}

/** What the users' keys spent, per user id (one grouped read over api_keys' user index) */
async function spendOf(userIds: number[]) {
  if (!userIds.length) return new Map<number, string>()
  const rows = await db.from('api_keys').whereIn('user_id', userIds).groupBy('user_id').select('user_id').sum('spent as spent')
  return new Map(rows.map((r: any) => [Number(r.user_id), String(r.spent ?? '0')]))
}

/**
 * LiteLLM's user management (/user/new, /user/info, /user/update, /user/list)
 * over the actions the management API (/api/admin/users), the panel and ace
 * use. `user_id` is our user id (as text; given back, an e-mail works too).
 * A LiteLLM user's `max_budget` is a spend cap; users here have a prepaid
 * balance instead, so it is not stored (README "Coming from LiteLLM").
 */
export default class LiteLLMUsersController {
  /**
   * POST /user/new: {user_email (or an e-mail as user_id), user_role?, plan?,
   * password?, models?, key_alias?, auto_create_key?}: the user and, unless
   * `auto_create_key` is false, a key for it (LiteLLM's default), whose clear
   * `key` is in this answer only, as the generated `password`.
   */
  async store(ctx: HttpContext) {
    return litellmManaged(async () => {
      const body = ctx.request.body()
      const email = body.user_email ?? (typeof body.user_id === 'string' && body.user_id.includes('@') ? body.user_id : undefined)
      if (email === undefined) throw fieldError('user_email', 'required: users here sign in by e-mail')
      const role = roleOf(body.user_role)
      if (body.auto_create_key !== undefined && typeof body.auto_create_key !== 'boolean') throw fieldError('auto_create_key', 'true or false')
      const input = await createUserValidator.validate({ email, role, plan: body.plan, password: body.password })
      // The key's fields are checked before the user is made: a bad alias creates nothing.
      const keyInput = body.auto_create_key === false ? null : await createKeyValidator.validate({ user: input.email, name: body.key_alias ?? undefined, models: modelGlobs(body.models) ?? undefined })
      const actor = apiActor(ctx)
      const { user, password } = await createUser(input, actor)
      let issued: { key: string; apiKey: ApiKey } | null = null
      if (keyInput) issued = await createApiKey({ userRef: String(user.id), name: keyInput.name, models: keyInput.models }, actor)
      await user.refresh()
      return {
        ...litellmUserJson(user, { plan: await planName(user.planId), spend: 0 }),
        key: issued?.key ?? null,
        token: issued ? String(issued.apiKey.id) : null,
        password,
      }
    })
  }

  /** GET /user/info?user_id=: the user, its keys (not deleted; 100 newest) and the teams it is a member of; without user_id, the caller. */
  async show(ctx: HttpContext) {
    return litellmManaged(async () => {
      const ref = ctx.request.input('user_id') ?? ctx.request.input('user_email')
      const user = ref ? await findUser(String(ref)) : await User.findOrFail(ctx.principal.user.id)
      await settleMetering()
      const keys = await ApiKey.query().where('user_id', user.id).whereNull('revoked_at').orderBy('id', 'desc').limit(INFO_KEYS)
      const spend = (await spendOf([user.id])).get(user.id) ?? '0'
      const teams = await teamsOfUser(user.id)
      const members = await teamMembers(teams.map((t) => t.id))
      return {
        user_id: String(user.id),
        user_info: { ...litellmUserJson(user, { plan: await planName(user.planId), spend }), teams: teams.map((t) => String(t.id)) },
        keys: keys.map(litellmKeyJson),
        teams: teams.map((t) => litellmTeamJson(t, members.get(t.id) ?? [])),
      }
    })
  }

  /** POST /user/update: {user_id or user_email, user_role?, plan? (a name, or null), disabled?} */
  async update(ctx: HttpContext) {
    return litellmManaged(async () => {
      const body = ctx.request.body()
      const user = await findUser(userRef(body))
      const role = roleOf(body.user_role) ?? user.role
      let planId = user.planId
      if (body.plan !== undefined) {
        if (body.plan !== null && typeof body.plan !== 'string') throw fieldError('plan', 'a plan\'s name, or null')
        const plan = body.plan === null ? null : await Plan.findBy('name', body.plan)
        if (body.plan !== null && !plan) throw new AdminInputError(`No plan named "${body.plan}"`, 'plan')
        planId = plan?.id ?? null
      }
      if (body.disabled !== undefined && typeof body.disabled !== 'boolean') throw fieldError('disabled', 'true or false')
      const saved = await updateUser({ id: user.id, role, planId, disabled: body.disabled ?? !!user.disabledAt }, apiActor(ctx))
      const spend = (await spendOf([saved.id])).get(saved.id) ?? '0'
      return litellmUserJson(saved, { plan: await planName(saved.planId), spend })
    })
  }

  /**
   * POST /user/delete {user_ids}: users here are never deleted (their ledger,
   * usage and audit rows stay): each is disabled, as the panel's Disable does,
   * which refuses its keys at once. Every id is resolved first: an unknown one
   * disables nobody; the management key's own user is refused.
   */
  async destroy(ctx: HttpContext) {
    return litellmManaged(async () => {
      const ids = ctx.request.body().user_ids
      if (!Array.isArray(ids) || ids.length === 0 || ids.length > 100) throw fieldError('user_ids', 'a list of 1 to 100 user ids (or e-mails)')
      const users: User[] = []
      for (const ref of ids) {
        const text = numberAsText(ref)
        if (typeof text !== 'string' || text.trim() === '') throw fieldError('user_ids', 'each a user id or e-mail')
        const user = await findUser(text.trim())
        // One user named twice (its id and its e-mail) is disabled, audited and answered once
        if (!users.some((u) => u.id === user.id)) users.push(user)
      }
      if (users.some((u) => u.id === ctx.principal.user.id)) throw fieldError('user_ids', 'the management key\'s own user cannot be disabled')
      const actor = apiActor(ctx)
      for (const user of users) {
        if (!user.disabledAt) await updateUser({ id: user.id, role: user.role, planId: user.planId, disabled: true }, actor)
      }
      return { deleted_users: users.map((u) => String(u.id)), disabled: true }
    })
  }

  /** GET /user/list[?page=&page_size=]: users newest first, 25 a page (at most 100). */
  async index(ctx: HttpContext) {
    return litellmManaged(async () => {
      const qs = ctx.request.qs()
      const { page = 1, page_size: size = 25 } = await listValidator.validate({ page: qs.page, page_size: qs.page_size })
      const [users, counted, plans] = await Promise.all([
        User.query().orderBy('id', 'desc').offset((page - 1) * size).limit(size),
        db.from('users').count('* as total').first(),
        Plan.query().select('id', 'name'),
      ])
      const names = new Map(plans.map((p) => [p.id, p.name]))
      await settleMetering()
      const spend = await spendOf(users.map((u) => u.id))
      const total = Number(counted?.total ?? 0)
      return {
        users: users.map((u) => litellmUserJson(u, { plan: names.get(u.planId ?? 0) ?? null, spend: spend.get(u.id) ?? '0' })),
        total,
        page,
        page_size: size,
        total_pages: Math.ceil(total / size),
      }
    })
  }
}
