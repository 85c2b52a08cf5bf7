import type { MeterEvent } from '#gateway/metering/meter_event'
import { memberPolicyId } from '#gateway/teams/member_policies'

const DAY_MS = 86_400_000

/** What a user has recorded but not committed: cost and the month's tokens. */
export interface UserPending {
  costPico: bigint
  input: number
  output: number
}

const NOTHING_PENDING: UserPending = Object.freeze({ costPico: 0n, input: 0, output: 0 })

/**
 * One UTC day of a key's uncommitted cost: the calls that began that day
 * (event.createdAt). A key's days form a short list, usually one node (today),
 * two just after midnight, more only after a long outage's spill.
 */
interface KeyDay {
  /** epoch ms of the day's UTC midnight */
  day: number
  costPico: bigint
  next: KeyDay | null
}

/**
 * Totals of metering events recorded but not yet committed, per user and per
 * API key, so that the caches (catalog.ts) can add them to what they read from
 * the database: a user's balance and tokens, a key's spend against its cap.
 * The meter keeps one for everything pending and one for the part sitting in
 * its spill file (usage_meter.ts).
 *
 * Keys are kept per UTC day rather than as one sum because a cap that resets
 * (spend_period.ts) counts only calls begun in the current day, week or month,
 * as the meter's statement does (a call begun before midnight counts in the
 * period it began in). Every such period is a run of whole UTC days, so the
 * pending cost in the current period is the sum of the days from its first
 * one: exact at any boundary and for any period, without scanning the queue
 * and without the meter knowing each key's period. Recording costs one Map
 * read per user and one per key (a Map write and a small object only for the
 * first event of a user, or of a key's day, since the last commit).
 */
export class PendingTotals {
  readonly users = new Map<number, UserPending>()
  /** Key id -> its days (zero-cost events are not kept: they change no spend) */
  readonly keys = new Map<number, KeyDay>()
  /**
   * `<user id>:<end user>` -> its days, as keys' (an end user's monthly limit,
   * end_user_policies.ts). Only events that name an end user and cost something.
   */
  readonly endUsers = new Map<string, KeyDay>()
  /** Team id -> its days, as keys' (a team's budget, teams/team_policies.ts). Only events of a team's key that cost something. */
  readonly teams = new Map<number, KeyDay>()
  /** Organization id -> its days, as teams' (organizations.max_budget). Only events admitted under one that cost something. */
  readonly orgs = new Map<number, KeyDay>()
  /** `${teamId} ${userId}` -> its days, as teams' (a member's budget in a team, teams/member_policies.ts). Only events admitted under one. */
  readonly members = new Map<string, KeyDay>()
  /** `${keyId} ${model}` -> its days, as keys' (a key's budget for a model, limits/model_budgets.ts). Only events admitted under one. */
  readonly modelBudgets = new Map<string, KeyDay>()

  /** Adds one recorded event. */
  add(event: MeterEvent) {
    const totals = this.users.get(event.userId)
    if (totals) {
      totals.costPico += event.costPico
      totals.input += event.usage.promptTokens
      totals.output += event.usage.completionTokens
    } else {
      this.users.set(event.userId, {
        costPico: event.costPico,
        input: event.usage.promptTokens,
        output: event.usage.completionTokens,
      })
    }
    if (event.apiKeyId !== null && event.costPico !== 0n) {
      this.#addKey(event.apiKeyId, dayOf(event.createdAt.getTime()), event.costPico)
    }
    if (event.endUser && event.costPico !== 0n) {
      addDay(this.endUsers, endUserKey(event.userId, event.endUser), dayOf(event.createdAt.getTime()), event.costPico)
    }
    if (event.teamId != null && event.costPico !== 0n) addDay(this.teams, event.teamId, dayOf(event.createdAt.getTime()), event.costPico)
    if (event.organizationId != null && event.costPico !== 0n) addDay(this.orgs, event.organizationId, dayOf(event.createdAt.getTime()), event.costPico)
    if (event.memberBudget && event.teamId != null && event.costPico !== 0n) {
      addDay(this.members, memberPolicyId(event.teamId, event.userId), dayOf(event.createdAt.getTime()), event.costPico)
    }
    if (event.modelBudget != null && event.costPico !== 0n) addDay(this.modelBudgets, event.modelBudget, dayOf(event.createdAt.getTime()), event.costPico)
  }

  /** Takes one event out again (its batch committed). */
  settle(event: MeterEvent) {
    this.#subtractUser(event.userId, event.costPico, event.usage.promptTokens, event.usage.completionTokens)
    if (event.apiKeyId !== null && event.costPico !== 0n) {
      this.#subtractKey(event.apiKeyId, dayOf(event.createdAt.getTime()), event.costPico)
    }
    if (event.endUser && event.costPico !== 0n) {
      subtractDay(this.endUsers, endUserKey(event.userId, event.endUser), dayOf(event.createdAt.getTime()), event.costPico)
    }
    if (event.teamId != null && event.costPico !== 0n) subtractDay(this.teams, event.teamId, dayOf(event.createdAt.getTime()), event.costPico)
    if (event.organizationId != null && event.costPico !== 0n) subtractDay(this.orgs, event.organizationId, dayOf(event.createdAt.getTime()), event.costPico)
    if (event.memberBudget && event.teamId != null && event.costPico !== 0n) {
      subtractDay(this.members, memberPolicyId(event.teamId, event.userId), dayOf(event.createdAt.getTime()), event.costPico)
    }
    if (event.modelBudget != null && event.costPico !== 0n) subtractDay(this.modelBudgets, event.modelBudget, dayOf(event.createdAt.getTime()), event.costPico)
  }

  /** Adds everything `other` holds (a spill tally handed back). */
  addAll(other: PendingTotals) {
    for (const [userId, add] of other.users) {
      const totals = this.users.get(userId)
      if (totals) {
        totals.costPico += add.costPico
        totals.input += add.input
        totals.output += add.output
      } else {
        this.users.set(userId, { ...add })
      }
    }
    for (const [keyId, head] of other.keys) {
      for (let node: KeyDay | null = head; node; node = node.next) this.#addKey(keyId, node.day, node.costPico)
    }
    for (const [key, head] of other.endUsers) {
      for (let node: KeyDay | null = head; node; node = node.next) addDay(this.endUsers, key, node.day, node.costPico)
    }
    for (const [teamId, head] of other.teams) {
      for (let node: KeyDay | null = head; node; node = node.next) addDay(this.teams, teamId, node.day, node.costPico)
    }
    for (const [orgId, head] of other.orgs) {
      for (let node: KeyDay | null = head; node; node = node.next) addDay(this.orgs, orgId, node.day, node.costPico)
    }
    for (const [id, head] of other.members) {
      for (let node: KeyDay | null = head; node; node = node.next) addDay(this.members, id, node.day, node.costPico)
    }
    for (const [id, head] of other.modelBudgets) {
      for (let node: KeyDay | null = head; node; node = node.next) addDay(this.modelBudgets, id, node.day, node.costPico)
    }
  }

  /** Takes out everything `other` holds (a replayed spill file, now committed). */
  subtractAll(other: PendingTotals) {
    for (const [userId, totals] of other.users) this.#subtractUser(userId, totals.costPico, totals.input, totals.output)
    for (const [keyId, head] of other.keys) {
      for (let node: KeyDay | null = head; node; node = node.next) this.#subtractKey(keyId, node.day, node.costPico)
    }
    for (const [key, head] of other.endUsers) {
      for (let node: KeyDay | null = head; node; node = node.next) subtractDay(this.endUsers, key, node.day, node.costPico)
    }
    for (const [teamId, head] of other.teams) {
      for (let node: KeyDay | null = head; node; node = node.next) subtractDay(this.teams, teamId, node.day, node.costPico)
    }
    for (const [orgId, head] of other.orgs) {
      for (let node: KeyDay | null = head; node; node = node.next) subtractDay(this.orgs, orgId, node.day, node.costPico)
    }
    for (const [id, head] of other.members) {
      for (let node: KeyDay | null = head; node; node = node.next) subtractDay(this.members, id, node.day, node.costPico)
    }
    for (const [id, head] of other.modelBudgets) {
      for (let node: KeyDay | null = head; node; node = node.next) subtractDay(this.modelBudgets, id, node.day, node.costPico)
    }
  }

  /** The user's pending totals (do not modify). */
  user(userId: number): UserPending {
    return this.users.get(userId) ?? NOTHING_PENDING
  }

  /**
   * The key's pending cost of calls begun at or after `sinceMs` (a period's
   * start, a UTC midnight; -Infinity for the whole of it).
   */
  keyCost(keyId: number, sinceMs: number): bigint {
    let sum = 0n
    for (let node = this.keys.get(keyId) ?? null; node; node = node.next) {
      if (node.day >= sinceMs) sum += node.costPico
    }
    return sum
  }

  /** The end user's pending cost of calls begun at or after `sinceMs` (see keyCost). */
  endUserCost(userId: number, endUser: string, sinceMs: number): bigint {
    let sum = 0n
    for (let node = this.endUsers.get(endUserKey(userId, endUser)) ?? null; node; node = node.next) {
      if (node.day >= sinceMs) sum += node.costPico
    }
    return sum
  }

  /** A team's pending cost of calls begun at or after `sinceMs` (see keyCost). */
  teamCost(teamId: number, sinceMs: number): bigint {
    let sum = 0n
    for (let node = this.teams.get(teamId) ?? null; node; node = node.next) {
      if (node.day >= sinceMs) sum += node.costPico
    }
    return sum
  }

  /** An organization's pending cost of calls begun at or after `sinceMs` (see keyCost). */
  orgCost(orgId: number, sinceMs: number): bigint {
    let sum = 0n
    for (let node = this.orgs.get(orgId) ?? null; node; node = node.next) {
      if (node.day >= sinceMs) sum += node.costPico
    }
    return sum
  }

  /** A member's budget in a team: its pending cost of calls begun at or after `sinceMs` (see keyCost). */
  memberCost(id: string, sinceMs: number): bigint {
    let sum = 0n
    for (let node = this.members.get(id) ?? null; node; node = node.next) {
      if (node.day >= sinceMs) sum += node.costPico
    }
    return sum
  }

  /** A key's budget for a model: its pending cost of calls begun at or after `sinceMs` (see keyCost). */
  modelBudgetCost(id: string, sinceMs: number): bigint {
    let sum = 0n
    for (let node = this.modelBudgets.get(id) ?? null; node; node = node.next) {
      if (node.day >= sinceMs) sum += node.costPico
    }
    return sum
  }

  #addKey(keyId: number, day: number, costPico: bigint) {
    addDay(this.keys, keyId, day, costPico)
  }

  #subtractKey(keyId: number, day: number, costPico: bigint) {
    subtractDay(this.keys, keyId, day, costPico)
  }

  #subtractUser(userId: number, costPico: bigint, input: number, output: number) {
    const totals = this.users.get(userId)
    if (!totals) return
    totals.costPico -= costPico
    totals.input -= input
    totals.output -= output
    if (totals.costPico === 0n && totals.input === 0 && totals.output === 0) this.users.delete(userId)
  }
}

/** The endUsers map's key: an end user is its owner's (two owners' `alice` are two end users). */
function endUserKey(userId: number, endUser: string): string {
  return `${userId}:${endUser}`
}

function addDay<K>(map: Map<K, KeyDay>, key: K, day: number, costPico: bigint) {
  const head = map.get(key)
  if (!head) {
    map.set(key, { day, costPico, next: null })
    return
  }
  let node: KeyDay = head
  for (;;) {
    if (node.day === day) {
      node.costPico += costPico
      return
    }
    if (!node.next) break
    node = node.next
  }
  node.next = { day, costPico, next: null }
}

function subtractDay<K>(map: Map<K, KeyDay>, key: K, day: number, costPico: bigint) {
  let previous: KeyDay | null = null
  for (let node = map.get(key) ?? null; node; previous = node, node = node.next) {
    if (node.day !== day) continue
    node.costPico -= costPico
    if (node.costPico !== 0n) return
    // The day is settled: unlink it (and forget the key when it was its last day).
    if (previous) previous.next = node.next
    else if (node.next) map.set(key, node.next)
    else map.delete(key)
    return
  }
}

/** Epoch ms of the UTC midnight that begins the day holding `ms`. */
function dayOf(ms: number): number {
  return Math.floor(ms / DAY_MS) * DAY_MS
}
