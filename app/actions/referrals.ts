import { randomInt } from 'node:crypto'
import db from '@adonisjs/lucid/services/db'
import type { TransactionClientContract } from '@adonisjs/lucid/types/database'
import BalanceLedgerEntry from '#models/balance_ledger_entry'
import { AdminInputError } from '#actions/admin_input_error'
import { writeAudit, type Actor } from '#actions/audit'
import { getSetting, putSetting } from '#services/app_settings'
import { parseDecimal } from '#gateway/metering/money'

/**
 * Referrals (new-api's invitation rewards). A user hands out
 * `/register?ref=<code>`; whoever signs up through it may get a welcome
 * credit at once, and the inviter gets a reward once, when the invitee
 * first adds money (a card payment, a redemption code, an admin's top-up).
 * Rewarding the first top-up rather than the sign-up is deliberate: free
 * accounts made by the dozen earn the inviter nothing.
 *
 * Both amounts are operator settings (admin Plans page, `referral:set`);
 * 0 and 0 (the default) means no program: links still record who invited
 * whom, but nobody is paid and Billing does not offer a link.
 */
export interface ReferralTerms {
  /** USD paid to the inviter at the invitee's first top-up */
  inviterCredit: string
  /** USD put on the invitee's balance when they sign up through a link */
  inviteeCredit: string
}

const NONE: ReferralTerms = { inviterCredit: '0', inviteeCredit: '0' }
/** USD amounts as the ledger takes them: at most 1,000 and 6 decimals. */
const AMOUNT = /^\d{1,4}(\.\d{1,6})?$/

/** The terms; `client` reads them inside a transaction (never a second pool connection while one is held). */
export async function referralTerms(client?: TransactionClientContract): Promise<ReferralTerms> {
  const stored = await getSetting<Partial<ReferralTerms>>('referral_terms', NONE, client)
  return { inviterCredit: stored.inviterCredit ?? '0', inviteeCredit: stored.inviteeCredit ?? '0' }
}

export function referralsOn(terms: ReferralTerms) {
  return positive(terms.inviterCredit) || positive(terms.inviteeCredit)
}

function positive(amount: string) {
  return parseDecimal(amount, 6) > 0n
}

export async function setReferralTerms(input: ReferralTerms, actor: Actor): Promise<ReferralTerms> {
  const terms = { inviterCredit: input.inviterCredit.trim() || '0', inviteeCredit: input.inviteeCredit.trim() || '0' }
  for (const [field, value] of [['inviterCredit', terms.inviterCredit], ['inviteeCredit', terms.inviteeCredit]] as const) {
    if (!AMOUNT.test(value) || parseDecimal(value, 6) > 1000_000000n) {
      throw new AdminInputError(`${field}: a USD amount from 0 to 1000, at most 6 decimals`, field)
    }
  }
  const before = await referralTerms()
  await db.transaction(async (trx) => {
    await putSetting('referral_terms', terms, trx)
    await writeAudit(trx, actor, {
      action: 'settings.referrals',
      subjectType: 'settings',
      subjectId: null,
      summary: `Referral rewards: inviter ${terms.inviterCredit} USD at the invitee's first top-up, invitee ${terms.inviteeCredit} USD at sign-up`,
      before: { ...before },
      after: { ...terms },
    })
  })
  return terms
}

/** Letters and digits that cannot be mistaken for each other when read aloud or retyped. */
const ALPHABET = 'ABCDEFGHJKLMNPQRSTUVWXYZ23456789'

function newCode() {
  let code = ''
  for (let i = 0; i < 8; i++) code += ALPHABET[randomInt(ALPHABET.length)]
  return code
}

/** A user's referral code, made the first time it is asked for (32^8 codes: a clash is retried). */
export async function referralCodeOf(userId: number): Promise<string> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const existing = await db.from('users').where('id', userId).select('referral_code').first()
    if (existing?.referral_code) return existing.referral_code
    try {
      // Two tabs asking at once: the guard keeps the first code.
      await db.from('users').where('id', userId).whereNull('referral_code').update({ referral_code: newCode() })
    } catch (error: any) {
      if (error?.code !== '23505') throw error
    }
  }
  throw new Error('Could not make a referral code')
}

/** The inviter a typed code names (any case, spaces ignored), or null: an unknown code is no error, just no referral. */
export async function inviterOf(typed: string | undefined | null, trx: TransactionClientContract) {
  const code = String(typed ?? '').replace(/\s+/g, '').toUpperCase()
  if (!/^[A-Z0-9]{4,16}$/.test(code)) return null
  const row = await trx.from('users').where('referral_code', code).whereNull('disabled_at').select('id', 'email').first()
  return row ? { id: Number(row.id), email: String(row.email) } : null
}

/**
 * At sign-up through a link: records the inviter and, unless the account
 * must first confirm its e-mail address (`payNow` false: paid by
 * welcomeVerifiedInvitee then), pays the invitee's welcome credit, in the
 * registration's transaction.
 */
export async function welcomeInvitee(
  trx: TransactionClientContract,
  invitee: { id: number; email: string },
  inviter: { id: number; email: string },
  terms: ReferralTerms,
  actor: Actor,
  payNow = true
) {
  await trx.from('users').where('id', invitee.id).update({ referred_by: inviter.id })
  if (payNow) await payWelcomeCredit(trx, invitee, inviter, terms, actor)
}

/**
 * An invited account confirmed its address (app/actions/email_verification.ts):
 * the welcome credit at the terms of now, if its inviter is still enabled.
 * The caller's guarded UPDATE of email_verified_at makes this run once.
 */
export async function welcomeVerifiedInvitee(trx: TransactionClientContract, invitee: { id: number; email: string; referredBy: number | null }, actor: Actor) {
  if (!invitee.referredBy) return
  const inviter = await trx.from('users').where('id', invitee.referredBy).whereNull('disabled_at').select('id', 'email').first()
  if (!inviter) return
  await payWelcomeCredit(trx, invitee, { id: Number(inviter.id), email: String(inviter.email) }, await referralTerms(trx), actor)
}

async function payWelcomeCredit(
  trx: TransactionClientContract,
  invitee: { id: number; email: string },
  inviter: { id: number; email: string },
  terms: ReferralTerms,
  actor: Actor
) {
  if (!positive(terms.inviteeCredit)) return
  await BalanceLedgerEntry.create(
    { userId: invitee.id, kind: 'adjustment', amount: terms.inviteeCredit, note: 'Welcome credit: signed up with an invitation', actorId: null },
    { client: trx }
  )
  await writeAudit(trx, actor, {
    action: 'referral.welcome',
    subjectType: 'user',
    subjectId: invitee.id,
    summary: `${invitee.email} signed up invited by ${inviter.email}: +${terms.inviteeCredit} USD welcome credit`,
    after: { inviter: inviter.id, amount: terms.inviteeCredit },
  })
}

/**
 * Called in a top-up's transaction before its ledger entry: when the user was
 * invited and not yet rewarded, locks them and their inviter in id order (the
 * order every action that locks two users takes: architecture.md "Row locks
 * and their order"). The entry's trigger locks the invitee and the reward's
 * entry the inviter after it; taken in that order, a top-up queued on the
 * invitee while another transaction held the inviter and waited on the
 * invitee deadlocked (Postgres failed one after deadlock_timeout). A user
 * nobody invited, or rewarded already, pays one indexed read that locks
 * nothing. `FOR NO KEY UPDATE`: the lock the trigger's UPDATE takes (a new
 * counter row's key-share lock on the owner does not wait on it).
 */
export async function lockForReward(trx: TransactionClientContract, inviteeId: number) {
  await trx.rawQuery(
    `SELECT u.id FROM users u, users i
      WHERE i.id = ? AND i.referred_by IS NOT NULL AND i.referral_rewarded_at IS NULL AND u.id IN (i.id, i.referred_by)
      ORDER BY u.id FOR NO KEY UPDATE OF u`,
    [inviteeId]
  )
}

/**
 * Called in the transaction that credits a user's top-up: pays their
 * inviter's reward if this is their first. One guarded UPDATE claims the
 * reward, so two top-ups settling at once pay it once; a user nobody
 * invited pays one indexed UPDATE that matches nothing.
 */
export async function rewardInviter(trx: TransactionClientContract, inviteeId: number) {
  const terms = await referralTerms(trx)
  const claimed = await trx.rawQuery(
    `UPDATE users SET referral_rewarded_at = now(), referral_reward = ?
      WHERE id = ? AND referred_by IS NOT NULL AND referral_rewarded_at IS NULL
      RETURNING referred_by, email`,
    [terms.inviterCredit, inviteeId]
  )
  const row = claimed.rows[0] as { referred_by: number; email: string } | undefined
  if (!row || !positive(terms.inviterCredit)) return
  const inviter = await trx.from('users').where('id', row.referred_by).whereNull('disabled_at').select('id', 'email').first()
  if (!inviter) {
    // A disabled inviter is not paid; the row says nothing was.
    await trx.from('users').where('id', inviteeId).update({ referral_reward: '0' })
    return
  }
  await BalanceLedgerEntry.create(
    { userId: inviter.id, kind: 'adjustment', amount: terms.inviterCredit, note: `Referral reward: ${maskEmail(row.email)} added funds`, actorId: null },
    { client: trx }
  )
  await writeAudit(trx, { id: null, label: 'referrals', source: 'system' }, {
    action: 'referral.reward',
    subjectType: 'user',
    subjectId: Number(inviter.id),
    summary: `${inviter.email} rewarded ${terms.inviterCredit} USD: ${row.email}, whom they invited, added funds for the first time`,
    after: { invitee: inviteeId, amount: terms.inviterCredit },
  })
}

/** "alice@example.com" -> "al…@example.com": the inviter sees who joined without a list of addresses. */
export function maskEmail(email: string) {
  const at = email.lastIndexOf('@')
  if (at <= 0) return '…'
  return `${email.slice(0, Math.min(2, at))}…${email.slice(at)}`
}

export interface ReferralSummary {
  code: string
  invited: Array<{ email: string; joinedAt: Date; rewardedAt: Date | null; reward: string | null }>
  /** Everyone invited, and those whose first top-up paid the reward */
  total: number
  rewarded: number
  earned: string
}

/** What the inviter's Billing page shows: the code, the newest 50 invitees (masked), counts and what they earned. */
export async function referralSummary(userId: number): Promise<ReferralSummary> {
  const code = await referralCodeOf(userId)
  const [rows, totals] = await Promise.all([
    db
      .from('users')
      .where('referred_by', userId)
      .orderBy('id', 'desc')
      .limit(50)
      .select('email', 'created_at', 'referral_rewarded_at', db.raw('referral_reward::text AS reward')),
    db
      .from('users')
      .where('referred_by', userId)
      .select(
        db.raw('count(*)::int AS total'),
        db.raw('count(referral_rewarded_at)::int AS rewarded'),
        db.raw('COALESCE(SUM(referral_reward), 0)::text AS earned')
      )
      .first(),
  ])
  return {
    code,
    invited: rows.map((r: any) => ({
      email: maskEmail(r.email),
      joinedAt: new Date(r.created_at),
      rewardedAt: r.referral_rewarded_at ? new Date(r.referral_rewarded_at) : null,
      reward: r.reward,
    })),
    total: totals?.total ?? 0,
    rewarded: totals?.rewarded ?? 0,
    earned: totals?.earned ?? '0',
  }
}
