import { randomUUID } from 'node:crypto'
import type { HttpContext } from '@adonisjs/core/http'
import { containsPattern, recordId } from '#services/record_id'
import db from '@adonisjs/lucid/services/db'
import User from '#models/user'
import Plan from '#models/plan'
import ApiKey from '#models/api_key'
import BalanceLedgerEntry from '#models/balance_ledger_entry'
import { createUser } from '#actions/create_user'
import { updateUser } from '#actions/update_user'
import { postLedgerEntryOnce } from '#actions/post_ledger_entry'
import { resetTwoFactor } from '#actions/disable_two_factor'
import { confirmEmailByAdmin } from '#actions/email_verification'
import { ledgerEntryValidator, panelCreateUserValidator, panelUpdateUserValidator } from '#validators/panel'
import { optionalNumber, checkbox, panelActor, notFound } from '#controllers/admin/panel'
import { formatUsd, formatUsdExact } from '#services/format'

const PAGE = 50

export default class UsersController {
  /** Users, newest first: search by email, only those waiting to confirm their address, keyset pages of 50. */
  async index({ request, view }: HttpContext) {
    const q = String(request.input('q', '') ?? '').trim()
    const unconfirmed = request.input('status') === 'unconfirmed'
    const before = recordId(request.input('before'))
    const query = User.query().preload('plan').orderBy('id', 'desc').limit(PAGE + 1)
    if (q) query.whereILike('email', containsPattern(q))
    if (unconfirmed) query.whereNull('email_verified_at')
    if (before) query.where('id', '<', before)
    const rows = await query
    const users = rows.slice(0, PAGE)
    const keyCounts = new Map<number, number>()
    if (users.length) {
      const counts = await db
        .from('api_keys')
        .whereIn('user_id', users.map((u) => u.id))
        .whereNull('revoked_at')
        .groupBy('user_id')
        .select('user_id')
        .count('* as total')
      for (const row of counts) keyCounts.set(Number(row.user_id), Number(row.total))
    }
    const next = rows.length > PAGE ? users[users.length - 1].id : null
    return view.render('admin/users/index', { users, keyCounts, q, unconfirmed, before, next })
  }

  /** The new-user form. */
  async create({ view }: HttpContext) {
    return view.render('admin/users/create', { plans: await planOptions() })
  }

  /** Creates a user; a generated password is shown once on the user's page. */
  async store(ctx: HttpContext) {
    const { request, response, session } = ctx
    const input = await request.validateUsing(panelCreateUserValidator, {
      data: { ...request.all(), planId: optionalNumber(request.input('planId')) },
    })
    const { user, password } = await createUser(
      { email: input.email, password: input.password, role: input.role, planId: input.planId ?? null },
      panelActor(ctx)
    )
    session.flash('success', `User ${user.email} created.`)
    if (password) session.flash('generatedPassword', password)
    return response.redirect(`/admin/users/${user.id}`)
  }

  /** A user: edit form, balance and ledger, keys. */
  async show(ctx: HttpContext) {
    const { params, view } = ctx
    const user = await User.query().where('id', Number(params.id)).preload('plan').first()
    if (!user) return notFound(ctx)
    const [ledger, keys, plans, referral] = await Promise.all([
      BalanceLedgerEntry.query().where('user_id', user.id).orderBy('id', 'desc').limit(50),
      ApiKey.query().where('user_id', user.id).orderBy('id', 'desc').limit(100),
      planOptions(),
      referralOf(user.id),
    ])
    // A generated password, once: a page not to be kept by the browser or a proxy.
    if (ctx.session.flashMessages.has('generatedPassword')) ctx.response.header('cache-control', 'no-store')
    // One key per rendering of the entry form: a double click posts it twice, the money moves once.
    return view.render('admin/users/show', { user, ledger, keys, plans, referral, ledgerKey: randomUUID() })
  }

  /** Saves role, plan, disabled, and an optional new password. */
  async update(ctx: HttpContext) {
    const { request, response, session, params } = ctx
    const input = await request.validateUsing(panelUpdateUserValidator, {
      data: {
        ...request.all(),
        planId: optionalNumber(request.input('planId')),
        disabled: checkbox(request.input('disabled')),
      },
    })
    const user = await updateUser(
      {
        id: Number(params.id),
        role: input.role,
        planId: input.planId ?? null,
        disabled: input.disabled,
        password: input.password,
      },
      panelActor(ctx)
    )
    session.flash('success', `Saved ${user.email}.`)
    return response.redirect(`/admin/users/${user.id}`)
  }

  /** Turns two-factor sign-in off for a user who lost their device (audited); they can set it up again. */
  async resetTwoFactor(ctx: HttpContext) {
    const { response, session, params } = ctx
    const user = await resetTwoFactor(String(Number(params.id)), panelActor(ctx))
    session.flash('success', `Two-factor sign-in of ${user.email} is off: they sign in with their password and can set it up again.`)
    return response.redirect(`/admin/users/${user.id}#two-factor`)
  }

  /** Marks the address of an account waiting for its confirmation link confirmed (audited; a waiting welcome credit is paid once). */
  async confirmEmail(ctx: HttpContext) {
    const { response, session, params } = ctx
    const user = await confirmEmailByAdmin(Number(params.id), panelActor(ctx))
    session.flash('success', `The address of ${user.email} is confirmed: the account can sign in.`)
    return response.redirect(`/admin/users/${user.id}`)
  }

  /** Top-up, refund or adjustment: one ledger entry with its note. */
  async ledger(ctx: HttpContext) {
    const { request, response, session, params } = ctx
    const input = await request.validateUsing(ledgerEntryValidator)
    const { user, posted } = await postLedgerEntryOnce(
      { userRef: String(Number(params.id)), kind: input.kind, amount: input.amount, note: input.note ?? null, idempotencyKey: input.idempotency_key },
      panelActor(ctx)
    )
    // A second post of the same form (a double click, Back and resend) moved nothing: say so.
    const what = posted ? 'Posted' : 'This form was already sent, nothing added again: posted'
    session.flash('success', `${what} ${input.kind} of ${formatUsdExact(input.amount)}; balance is now ${formatUsd(user.balance)}.`)
    return response.redirect(`/admin/users/${user.id}#balance`)
  }
}

/** Plans for a select, with "no plan". */
export async function planOptions() {
  const plans = await Plan.query().orderBy('name')
  return [{ value: '', label: '— no plan —' }, ...plans.map((p) => ({ value: String(p.id), label: p.name }))]
}

/** Who invited the user (referrals), and how many they invited and were rewarded for. */
async function referralOf(userId: number) {
  const [inviter, invited] = await Promise.all([
    db
      .from('users as u')
      .join('users as i', 'i.id', 'u.referred_by')
      .where('u.id', userId)
      .select('i.id', 'i.email', 'u.referral_rewarded_at as rewarded_at')
      .first(),
    db
      .from('users')
      .where('referred_by', userId)
      .select(db.raw('count(*)::int AS total'), db.raw('COALESCE(SUM(referral_reward), 0)::text AS earned'))
      .first(),
  ])
  return { inviter: inviter ?? null, invited: invited?.total ?? 0, earned: invited?.earned ?? '0' }
}
