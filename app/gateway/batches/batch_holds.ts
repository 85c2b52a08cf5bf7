import db from '@adonisjs/lucid/services/db'
import { memberRoom, type MemberPolicy } from '#gateway/teams/member_policies'
import { GatewayError } from '#exceptions/gateway_error'
import type { Catalog } from '#gateway/catalog'
import { heldOnKey, holdOnKey, releaseOnKey } from '#gateway/metering/key_reservations'
import { displayUsd, toPico } from '#gateway/metering/money'
import { isPriced } from '#gateway/metering/pricing'
import type { PriceInfo, Principal } from '#gateway/types'
import { teamRoom, type TeamPolicy } from '#gateway/teams/team_policies'
import type { OrgPolicy } from '#gateway/teams/organization_policies'
import { modelBudgetById, modelBudgetRoom, type ModelBudget } from '#gateway/limits/model_budgets'
import { limitFor } from '#gateway/limits/model_limits'

/**
 * The key's budget a batch of `model` counts on: found as a request's is
 * (limitFor: `GPT-4o`, `o3-high` spend the `gpt-4o`, `o3` budgets), or null.
 * Its name (budget.model) is kept on the batch's row (budget_model), so its
 * hold and its bill count there, not under the spelling the batch used,
 * which no budget has (a batch of another spelling held and spent nothing).
 */
export function batchBudgetOf(principal: Principal, model: string): ModelBudget | null {
  const limits = principal.key.modelLimits
  return limits === null ? null : (limitFor(limits, model)?.budget ?? null)
}

/**
 * A new batch's hold refused (402) when the balance, less what requests and
 * other batches hold, cannot cover it, or the key's spend cap less its holds,
 * or the budget of the key's team less what its keys' requests and batches
 * hold (the code and wording of a generation refused by it). Nothing is held
 * for a free model.
 */
export function refuseUncoveredHold(
  principal: Principal,
  price: PriceInfo | null,
  hold: bigint,
  requests: number,
  model?: string,
  /** What holds it, and why that much (a video: 'This video', its seconds at the model's price); a batch by default */
  subject: { name: string; why: string } = { name: 'This batch', why: `its ${requests} requests' estimated cost at the batch price` }
) {
  if (!isPriced(price)) return
  const { user, key } = principal
  if (user.balancePico - user.reservedPico < hold) {
    throw new GatewayError(
      402,
      'insufficient_balance',
      `Insufficient balance: ${subject.name.toLowerCase()} holds up to $${displayUsd(hold)} (${subject.why}) until it is billed; top up your account`,
      'insufficient_quota'
    )
  }
  if (key.spendLimitPico !== null && key.spentPico + heldOnKey(key.id) + hold > key.spendLimitPico) {
    throw new GatewayError(
      402,
      'spend_limit_exceeded',
      `${subject.name} holds up to $${displayUsd(hold)}, more than this API key's spend limit has left`,
      'insufficient_quota'
    )
  }
  const room = principal.team === null ? null : teamRoom(principal.team, null)
  if (room !== null && room < hold) {
    throw new GatewayError(
      402,
      'spend_limit_exceeded',
      `${subject.name} holds up to $${displayUsd(hold)}, more than the budget of this API key's team '${principal.team!.alias}' has left`,
      'insufficient_quota'
    )
  }
  // The organization's budget, less what its teams' requests and batches hold (a batch holds on it, and its bill counts there).
  const ofOrg = principal.org === null ? null : teamRoom(principal.team!, principal.org)
  if (ofOrg !== null && ofOrg < hold) {
    throw new GatewayError(
      402,
      'spend_limit_exceeded',
      `${subject.name} holds up to $${displayUsd(hold)}, more than the budget of this API key's organization '${principal.org!.alias}' has left`,
      'insufficient_quota'
    )
  }
  // The owner's budget in the team (member_policies.ts), less what their requests and batches through its keys hold.
  const ofMember = principal.member === null ? null : memberRoom(principal.member)
  if (ofMember !== null && ofMember < hold) {
    throw new GatewayError(
      402,
      'spend_limit_exceeded',
      `${subject.name} holds up to $${displayUsd(hold)}, more than the member budget of this API key's owner in team '${principal.team!.alias}' has left`,
      'insufficient_quota'
    )
  }
  // The key's budget for the batch's model (limits/model_budgets.ts), less what its requests and batches hold.
  const budget = model === undefined ? null : batchBudgetOf(principal, model)
  if (budget !== null && modelBudgetRoom(budget) < hold) {
    throw new GatewayError(
      402,
      'budget_exceeded',
      `${subject.name} holds up to $${displayUsd(hold)}, more than this API key's budget for model '${budget.model}' has left`,
      'insufficient_quota'
    )
  }
}

interface Hold {
  userId: number
  keyId: number | null
  /** The team policy whose heldPico counts it (the same object is released, whatever reloads happen meanwhile) */
  team: TeamPolicy | null
  /** The team's organization when it was held, whose heldPico counts it too (released from the same object) */
  org: OrgPolicy | null
  /** The owner's limits in that team when it was held (member_policies.ts), whose heldPico counts it too */
  member: MemberPolicy | null
  /** The key's budget for the batch's model whose heldPico counts it (when this process has the key loaded) */
  budget: ModelBudget | null
  pico: bigint
  /** When this process took it (epoch ms): a sync started before then cannot know it */
  since: number
}

/**
 * What unbilled batches hold on their owners' balances (and keys' spend
 * caps), in this process: a batch lasts up to a day, far beyond any request,
 * so its hold lives in `batch_objects.hold` and here, beside the requests'
 * holds on the same user state (`reservedPico`, which every priced request's
 * balance check counts: access_policy.ts) and key (key_reservations.ts).
 *
 * `sync()` reads the table (at boot, and at each sweep): a restart finds its
 * batches' holds again, and another instance's batches are held here within
 * a sweep. A user not loaded yet gets its holds when it is (Catalog.standingHolds).
 */
/** The unbilled batches' holds, as sync() reads them */
const UNBILLED_BATCHES = `SELECT id, user_id, api_key_id, team_id, model, budget_model, hold::text AS hold FROM batch_objects
  WHERE kind = 'batch' AND billed_at IS NULL AND hold > 0`

export class BatchHolds {
  /** By batch row id */
  #holds = new Map<number, Hold>()
  #byUser = new Map<number, bigint>()
  /** Batches released here, and when: a sync whose read began before that still sees them unbilled */
  #released = new Map<number, number>()
  /** Holds of batches being created (before their row exists): negative ids, never a row's */
  #creating = 0

  constructor(
    private catalog: Catalog,
    /**
     * The unbilled objects' holds (id, user_id, api_key_id, team_id, model, budget_model, hold): batches, or
     * another table whose objects hold the same way (videos/video_service.ts), each its own BatchHolds
     */
    private unbilledSql: string = UNBILLED_BATCHES
  ) {
    // Another table's holds may be read already: a user loaded now gets both.
    const others = catalog.standingHolds
    catalog.standingHolds = (userId) => others(userId) + (this.#byUser.get(userId) ?? 0n)
  }

  /** pico-USD held for the user's batches */
  heldFor(userId: number): bigint {
    return this.#byUser.get(userId) ?? 0n
  }

  /**
   * Holds `pico` for the batch (once: a second hold of the same batch is
   * ignored), on its owner's balance, its key's cap and its team's budget
   * (the team it was created in, when this process has it loaded) and that
   * team's organization's.
   */
  hold(batchId: number, userId: number, keyId: number | null, pico: bigint, teamId: number | null = null, budgetModel: string | null = null) {
    if (pico <= 0n || this.#holds.has(batchId) || this.#released.has(batchId)) return
    const team = teamId === null ? null : (this.catalog.teams.get(teamId) ?? null)
    const budget = keyId === null || budgetModel === null ? null : (modelBudgetById(`${keyId} ${budgetModel}`) ?? null)
    const org = team?.org ?? null
    const member = team?.members?.get(userId) ?? null
    this.#holds.set(batchId, { userId, keyId, team, org, member, budget, pico, since: Date.now() })
    if (team !== null) team.heldPico += pico
    if (org !== null) org.heldPico += pico
    if (member !== null) member.heldPico += pico
    if (budget !== null) budget.heldPico += pico
    this.#byUser.set(userId, this.heldFor(userId) + pico)
    const state = this.catalog.loadedUser(userId)
    if (state) state.reservedPico += pico
    if (keyId !== null) holdOnKey(keyId, pico)
  }

  /**
   * Holds `pico` while `create` asks the upstream for the batch and stores its
   * row, then on that row (synchronously: no moment without it); released if
   * the creation fails. Taken before the upstream is asked, so batches
   * created at once see each other's holds.
   */
  async holdWhileCreating<T extends { id: number; user_id: number; api_key_id: number | null; team_id: number | string | null; budget_model?: string | null }>(
    userId: number,
    keyId: number | null,
    teamId: number | null,
    pico: bigint,
    create: () => Promise<T>,
    /** The name of the key's budget the batch counts on (batchBudgetOf), if any: it counts the hold */
    budgetModel: string | null = null
  ): Promise<T> {
    const pending = --this.#creating
    this.hold(pending, userId, keyId, pico, teamId, budgetModel)
    try {
      const row = await create()
      this.release(pending)
      this.hold(row.id, row.user_id, row.api_key_id, pico, row.team_id === null ? null : Number(row.team_id), row.budget_model ?? budgetModel)
      return row
    } finally {
      this.release(pending)
    }
  }

  /** Releases the batch's hold (billed, or its creation failed); a batch not held is a no-op. */
  release(batchId: number) {
    this.#released.set(batchId, Date.now())
    const hold = this.#holds.get(batchId)
    if (!hold) return
    this.#holds.delete(batchId)
    const left = this.heldFor(hold.userId) - hold.pico
    if (left > 0n) this.#byUser.set(hold.userId, left)
    else this.#byUser.delete(hold.userId)
    const state = this.catalog.loadedUser(hold.userId)
    if (state) state.reservedPico -= hold.pico
    if (hold.keyId !== null) releaseOnKey(hold.keyId, hold.pico)
    if (hold.team !== null) hold.team.heldPico -= hold.pico
    if (hold.org !== null) hold.org.heldPico -= hold.pico
    if (hold.member !== null) hold.member.heldPico -= hold.pico
    if (hold.budget !== null) hold.budget.heldPico -= hold.pico
  }

  /**
   * Forgets the releases kept against a stale read (sync): for a table
   * emptied with its ids restarted (the tests' resetDatabase), whose next rows
   * take the released ids, and would never be held.
   */
  forgetReleased() {
    this.#released.clear()
  }

  /**
   * Makes the holds what the table says: every unbilled batch held, every
   * hold of a batch billed elsewhere (another instance) released. A hold taken
   * or released here while the read was out is left as it is.
   */
  async sync() {
    const started = Date.now()
    const result = await db.rawQuery(this.unbilledSql)
    // A batch of a team this process has not loaded (made on another instance in a team created there, its
    // notice late or lost): the team read first, or the hold, taken once, would never count against its budget here.
    for (const row of result.rows) {
      const teamId = row.team_id === null ? null : Number(row.team_id)
      if (teamId === null || this.#holds.has(Number(row.id)) || this.catalog.teams.get(teamId) !== undefined) continue
      await this.catalog.teams.unheard(teamId)
    }
    const unbilled = new Set<number>()
    for (const row of result.rows) {
      const id = Number(row.id)
      unbilled.add(id)
      if (this.#released.has(id)) continue
      this.hold(
        id,
        Number(row.user_id),
        row.api_key_id === null ? null : Number(row.api_key_id),
        toPico(row.hold),
        row.team_id === null ? null : Number(row.team_id),
        // A row from before migration 1021 holds on its model's own budget, as it did.
        row.budget_model ?? row.model ?? null
      )
    }
    // A batch being created (a negative id, batches_api.ts) has no row yet: its hold stays until its creation ends.
    for (const [id, hold] of this.#holds) if (id > 0 && !unbilled.has(id) && hold.since < started) this.release(id)
    // A release older than this read is in it (billed_at set): no later sync can hold it again.
    for (const [id, at] of this.#released) if (at < started) this.#released.delete(id)
  }
}
