import { markEmailVerified } from '#actions/email_verification'
import db from '@adonisjs/lucid/services/db'
import type { TransactionClientContract } from '@adonisjs/lucid/types/database'
import User from '#models/user'
import UserIdentity from '#models/user_identity'
import { writeAudit, type Actor } from '#actions/audit'
import { defaultPlan } from '#actions/set_default_plan'
import { inviterOf, referralTerms, welcomeInvitee } from '#actions/referrals'
import { registrationOpen } from '#services/app_settings'
import { SsoError } from '#services/sso/sso_error'
import type { ProviderIdentity } from '#services/sso/sso_provider'
import { oidcSettings } from '#services/sso/sso_settings'

/**
 * Which account a provider's identity signs in, linking or creating one
 * when that is safe:
 * - a known identity (provider, OIDC issuer, subject) signs its account in;
 * - an unknown one whose verified e-mail is an existing account's is linked
 *   to it only for the OIDC provider with OIDC_LINK_BY_EMAIL=true (the
 *   company's identity provider vouches for its own addresses), and never to
 *   an administrator's account (a provider that lets anyone claim a
 *   "verified" address would sign them in as the admin); otherwise refused,
 *   and the owner links it from /dashboard/security while signed in (a
 *   GitHub address verified years ago may have changed hands since);
 * - an unknown one with a new verified e-mail makes an account when
 *   registration is open, on the default plan, without a password.
 * The role is always the account's own, never anything the provider says.
 */
export async function accountForIdentity(identity: ProviderIdentity, context: { ip: string; ref: string | null }): Promise<User> {
  const known = await linkedIdentity(identity)
  if (known) return usable(await signedInBy(known, identity, context.ip))

  if (!identity.email) {
    throw new SsoError('unverified_email', `${identity.provider} subject ${identity.subject}: no verified e-mail (${identity.unverifiedEmail ?? 'none given'})`)
  }
  const existing = await User.query().whereRaw('lower(email) = ?', [identity.email]).first()
  if (existing) {
    if (!(identity.provider === 'oidc' && oidcSettings()?.linkByEmail)) {
      throw new SsoError('not_linked', `${identity.provider} subject ${identity.subject}: ${identity.email} is account ${existing.id}, not linked`)
    }
    if (existing.isAdmin) {
      throw new SsoError('admin_not_linked', `${identity.provider} subject ${identity.subject}: ${identity.email} is admin account ${existing.id}, never linked by e-mail`)
    }
    usable(existing)
    await linkIdentity(existing.id, identity, { id: existing.id, label: existing.email, source: 'portal', ip: context.ip }, 'by e-mail', existing)
    return existing
  }
  if (!(await registrationOpen())) {
    throw new SsoError('registration_closed', `${identity.provider} ${identity.email}: no account and registration is closed`)
  }
  return registerWithIdentity(identity, context)
}

/**
 * The linked identity for this provider, issuer and subject. A `sub` is
 * unique only within its issuer: after the OIDC provider is pointed at
 * another issuer, the new one's person with an old `sub` is someone else
 * (migration 1025). An OIDC row no issuer has taken yet (linked before the
 * upgrade while OIDC was off) is taken by the first issuer it signs in
 * through.
 */
async function linkedIdentity(identity: ProviderIdentity): Promise<UserIdentity | null> {
  const query = () => UserIdentity.query().where('provider', identity.provider).where('subject', identity.subject)
  const bound = await query().where('issuer', identity.issuer).first()
  if (bound || identity.provider !== 'oidc' || identity.issuer === '') return bound
  const unbound = await query().where('issuer', '').first()
  if (!unbound) return null
  // Conditional: two first sign-ins at once (or through two issuers), one takes it; the other looks again.
  const taken = Number(await db.from('user_identities').where('id', unbound.id).where('issuer', '').update({ issuer: identity.issuer }))
  return taken > 0 ? unbound : query().where('issuer', identity.issuer).first()
}

/** Disabled accounts do not sign in, whichever way. */
function usable(user: User) {
  if (user.disabledAt) throw new SsoError('disabled', `account ${user.id} is disabled`)
  return user
}

async function signedInBy(known: UserIdentity, identity: ProviderIdentity, ip: string) {
  return db.transaction(async (trx) => {
    const user = await User.findOrFail(known.userId, { client: trx })
    await trx
      .from('user_identities')
      .where('id', known.id)
      .update({ last_used_at: new Date(), ...(identity.email ? { email: identity.email } : {}) })
    if (!user.disabledAt) {
      await writeAudit(trx, { id: user.id, label: user.email, source: 'portal', ip }, {
        action: 'user.sso_login',
        subjectType: 'user',
        subjectId: user.id,
        summary: `${user.email} signed in with ${identity.provider}`,
        after: { provider: identity.provider, subject: identity.subject },
      })
    }
    return user
  })
}

/** A new account for an identity (as /register makes one, without a password), with the identity linked. */
async function registerWithIdentity(identity: ProviderIdentity, context: { ip: string; ref: string | null }) {
  const email = identity.email!
  const plan = await defaultPlan()
  const terms = context.ref ? await referralTerms() : null
  try {
    return await db.transaction(async (trx) => {
      const user = await User.create({ email, password: null, role: 'user', planId: plan?.id ?? null }, { client: trx })
      const actor: Actor = { id: user.id, label: email, source: 'portal', ip: context.ip }
      await writeAudit(trx, actor, {
        action: 'user.register',
        subjectType: 'user',
        subjectId: user.id,
        summary: `${email} registered with ${identity.provider} on plan ${plan?.name ?? '(none)'}`,
        after: { email, role: 'user', plan: plan?.name ?? null, provider: identity.provider },
      })
      await insertIdentity(trx, user.id, identity, actor, 'at sign-up')
      const inviter = terms ? await inviterOf(context.ref, trx) : null
      if (inviter && terms) await welcomeInvitee(trx, { id: user.id, email }, inviter, terms, actor)
      return user
    })
  } catch (error: any) {
    // The same sign-in finished twice at once (a double click on the provider's page): the one that won signs in.
    if (error?.code === '23505') {
      const winner = await linkedIdentity(identity)
      if (winner) return usable(await User.findOrFail(winner.userId))
      throw new SsoError('not_linked', `${email} was registered meanwhile`)
    }
    throw error
  }
}

async function insertIdentity(trx: TransactionClientContract, userId: number, identity: ProviderIdentity, actor: Actor, how: string) {
  const [row] = await trx
    .table('user_identities')
    .insert({
      user_id: userId,
      provider: identity.provider,
      issuer: identity.issuer,
      subject: identity.subject,
      email: identity.email,
      created_at: new Date(),
      last_used_at: new Date(),
    })
    .returning('id')
  await writeAudit(trx, actor, {
    action: 'user.identity_link',
    subjectType: 'user',
    subjectId: userId,
    summary: `${identity.provider} identity ${identity.email ?? identity.subject} linked ${how}`,
    after: { provider: identity.provider, issuer: identity.issuer || undefined, subject: identity.subject, email: identity.email },
  })
  return Number(row.id ?? row)
}

/**
 * Links an identity to an account (the Security page's Link, or by e-mail as
 * above: `confirms` is then the account, whose address the provider verified). An identity already linked to another account is refused; already
 * this account's, nothing changes.
 */
export async function linkIdentity(userId: number, identity: ProviderIdentity, actor: Actor, how = 'from the Security page', confirms?: User) {
  const owner = await linkedIdentity(identity)
  if (owner && owner.userId !== userId) throw new SsoError('taken', `${identity.provider} subject ${identity.subject} belongs to account ${owner.userId}`)
  if (owner) return false
  try {
    await db.transaction(async (trx) => {
      await insertIdentity(trx, userId, identity, actor, how)
      // Linked by its verified e-mail: the provider vouched for the address, so an account still waiting for its
      // confirmation link (sign-up verification) is confirmed, and what waited for it is paid, once.
      if (confirms) await markEmailVerified(trx, confirms, actor)
    })
  } catch (error: any) {
    if (error?.code === '23505') throw new SsoError('taken', `${identity.provider} subject ${identity.subject} linked meanwhile`)
    throw error
  }
  return true
}

/** An account's linked identities, oldest first (the Security page). */
export function identitiesOf(userId: number) {
  return UserIdentity.query().where('user_id', userId).orderBy('id', 'asc')
}

/** Why an unlink is refused: not this account's, or the last way in of an account without a password. */
export class UnlinkRefused extends Error {
  constructor(readonly reason: 'not_found' | 'last_way_in') {
    super(reason)
  }
}

/**
 * Unlinks one of the account's identities. The account's row is locked so two
 * unlinks at once cannot both pass the "another way in" check.
 */
export async function unlinkIdentity(userId: number, identityId: number, actor: Actor) {
  await db.transaction(async (trx) => {
    const user = await User.query({ client: trx }).where('id', userId).forUpdate().firstOrFail()
    const identity = await trx.from('user_identities').where('id', identityId).where('user_id', userId).first()
    if (!identity) throw new UnlinkRefused('not_found')
    if (!user.password) {
      const row = await trx.from('user_identities').where('user_id', userId).count('* as n').first()
      if (Number(row?.n ?? 0) <= 1) throw new UnlinkRefused('last_way_in')
    }
    await trx.from('user_identities').where('id', identityId).delete()
    await writeAudit(trx, actor, {
      action: 'user.identity_unlink',
      subjectType: 'user',
      subjectId: userId,
      summary: `${identity.provider} identity ${identity.email ?? identity.subject} unlinked`,
      before: { provider: identity.provider, subject: identity.subject, email: identity.email },
    })
  })
}
