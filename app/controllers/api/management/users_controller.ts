import type { HttpContext } from '@adonisjs/core/http'
import vine from '@vinejs/vine'
import User from '#models/user'
import Plan from '#models/plan'
import { createUser } from '#actions/create_user'
import { updateUser } from '#actions/update_user'
import { postLedgerEntry } from '#actions/post_ledger_entry'
import { AdminInputError } from '#actions/admin_input_error'
import { GatewayError } from '#exceptions/gateway_error'
import { createUserValidator } from '#validators/admin'
import { ledgerEntryValidator } from '#validators/panel'
import { datesOf, usageMonthValidator } from '#validators/usage_period'
import { apiActor, filterId, keysetPage, managed, money, userJson } from '#services/management_api'
import db from '@adonisjs/lucid/services/db'
import { currentPeriod } from '#gateway/types'
import { fromPico, toPico } from '#gateway/metering/money'
import { settleMetering } from '#services/settle_metering'


/** PATCH /api/admin/users/:id: the fields given change, the rest stay. */
const updateUserValidator = vine.compile(
  vine.object({
    role: vine.enum(['admin', 'user'] as const).optional(),
    /** A plan's name, or null for none */
    plan: vine.string().trim().minLength(1).nullable().optional(),
    disabled: vine.boolean({ strict: true }).optional(),
  })
)

export default class ManagementUsersController {
  /** GET /api/admin/users[?email=part][&before=id]: newest first, 100 a page. */
  async index({ request }: HttpContext) {
    const email = String(request.input('email', '') ?? '').trim()
    const before = filterId(request.input('before'), 'before')
    const plans = await planNames()
    return keysetPage((limit) => {
      const query = User.query().orderBy('id', 'desc').limit(limit)
      if (email) query.whereILike('email', `%${email.replace(/[%_\\]/g, (c) => `\\${c}`)}%`)
      if (before) query.where('id', '<', before)
      return query
    }, (u) => userJson(u, plans.get(u.planId ?? 0) ?? null))
  }

  /** POST /api/admin/users: {email, password?, role?, plan?}; a generated password is returned once. */
  async store(ctx: HttpContext) {
    return managed(async () => {
      const input = await createUserValidator.validate(ctx.request.body())
      const { user, password } = await createUser(input, apiActor(ctx))
      await user.refresh()
      ctx.response.status(201)
      return { ...userJson(user, (await planNames()).get(user.planId ?? 0) ?? null), password }
    })
  }

  async show({ params }: HttpContext) {
    return managed(async () => {
      const user = await findUser(params.id)
      return userJson(user, (await planNames()).get(user.planId ?? 0) ?? null)
    })
  }

  /** PATCH /api/admin/users/:id: {role?, plan?, disabled?} */
  async update(ctx: HttpContext) {
    return managed(async () => {
      const user = await findUser(ctx.params.id)
      const input = await updateUserValidator.validate(ctx.request.body())
      let planId = user.planId
      if (input.plan !== undefined) {
        const plan = input.plan === null ? null : await Plan.findBy('name', input.plan)
        if (input.plan !== null && !plan) throw new AdminInputError(`No plan named "${input.plan}"`, 'plan')
        planId = plan?.id ?? null
      }
      const saved = await updateUser(
        { id: user.id, role: input.role ?? user.role, planId, disabled: input.disabled ?? !!user.disabledAt },
        apiActor(ctx)
      )
      return userJson(saved, (await planNames()).get(saved.planId ?? 0) ?? null)
    })
  }

  /**
   * GET /api/admin/users/:id/usage[?month=YYYY-MM]: a month's requests,
   * tokens and cost per model (the monthly counters the meter keeps), for
   * invoicing; the current UTC month by default.
   */
  async usage(ctx: HttpContext) {
    return managed(async () => {
      const user = await findUser(ctx.params.id)
      const { month } = await usageMonthValidator.validate(datesOf(ctx.request.qs(), ['month']))
      await settleMetering()
      const period = month ? `${month}-01` : currentPeriod()
      const rows = await db
        .from('monthly_usage')
        .where('user_id', user.id)
        .where('period', period)
        .groupBy('model')
        .orderBy('model')
        .select('model')
        .sum({ requests: 'requests', input_tokens: 'input_tokens', output_tokens: 'output_tokens', cost: 'cost' })
      let cost = 0n
      const models = rows.map((r: any) => {
        cost += toPico(String(r.cost))
        return { model: r.model, requests: Number(r.requests), input_tokens: Number(r.input_tokens), output_tokens: Number(r.output_tokens), cost: money(String(r.cost)) }
      })
      return {
        object: 'user_usage',
        user_id: user.id,
        month: period.slice(0, 7),
        requests: models.reduce((n, m) => n + m.requests, 0),
        cost: money(fromPico(cost)),
        models,
      }
    })
  }

  /** POST /api/admin/users/:id/ledger: {kind: topup|refund|adjustment, amount, note?}: one ledger entry (once per `Idempotency-Key`). */
  async ledger(ctx: HttpContext) {
    return managed(async () => {
      const user = await findUser(ctx.params.id)
      const input = await ledgerEntryValidator.validate(ctx.request.body())
      const saved = await postLedgerEntry(
        {
          userRef: String(user.id),
          kind: input.kind,
          amount: input.amount,
          note: input.note ?? null,
          // A client's retry with the same key posts nothing more (post_ledger_entry.ts); the panel form's field works too.
          idempotencyKey: idempotencyKeyOf(ctx) ?? input.idempotency_key ?? null,
        },
        apiActor(ctx)
      )
      ctx.response.status(201)
      return userJson(saved, (await planNames()).get(saved.planId ?? 0) ?? null)
    })
  }
}

/** The `Idempotency-Key` header (at most 100 characters), or null. */
function idempotencyKeyOf(ctx: HttpContext): string | null {
  const key = ctx.request.header('idempotency-key')?.trim()
  if (!key) return null
  if (key.length > 100) throw GatewayError.invalidRequest('Idempotency-Key: at most 100 characters', 'invalid_header')
  return key
}

/** A user by numeric id or e-mail. */
async function findUser(ref: string) {
  const user = /^\d+$/.test(ref) ? await User.find(Number(ref)) : await User.findBy('email', ref)
  if (!user) throw AdminInputError.notFound(`No user "${ref}"`)
  return user
}

async function planNames() {
  return new Map((await Plan.query().select('id', 'name')).map((p) => [p.id, p.name]))
}
