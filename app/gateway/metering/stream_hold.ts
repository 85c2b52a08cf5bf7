import { GatewayError } from '#exceptions/gateway_error'
import { outputTokensBeyondHolds, roomBeyondHolds } from '#gateway/access_policy'
import type { CanonicalUsage } from '#gateway/dialects/canonical'
import { withPricedExtras } from '#gateway/dialects/dialect'
import { costOf } from '#gateway/metering/pricing'
import { DEFAULT_COMPLETION_ALLOWANCE, holdPrice } from '#gateway/metering/reservation'
import type { RequestAccount } from '#gateway/metering/request_account'
import { countTokens, countTokensNow } from '#gateway/metering/tokenizer'
import type { TextPieces } from '#gateway/relay/text_pieces'
import type { PriceInfo, TokenUsage } from '#gateway/types'

/**
 * Tokens per character of answer text assumed between two checks. o200k
 * counts English at ~0.25 and CJK at ~0.7-1 per character; only rarer text
 * (emoji runs, scripts outside the vocabulary: up to 3, one per UTF-8 byte)
 * is denser, and a check counts it exactly when it comes.
 */
const TOKENS_PER_CHAR = 1n
/**
 * The most o200k makes of one UTF-16 character: one token per UTF-8 byte,
 * three for a BMP character (an astral one is two UTF-16 units for its four
 * bytes). Assumed once the account has less than an allowance of room left,
 * so the last stretch before a cut never relays more than the hold pays for.
 */
const MAX_TOKENS_PER_CHAR = 3n

/**
 * The hold of one streamed answer, kept ahead of what the answer costs as
 * it streams (the gap docs/reliability.md used to list: a stream longer
 * than its hold was relayed and billed whole, whatever the balance).
 *
 * The relays count the answer's characters anyway (relay/text_pieces.ts);
 * `next` is how many the hold covers at TOKENS_PER_CHAR (at
 * MAX_TOKENS_PER_CHAR once less than an allowance of room is left: the last
 * stretch before a cut never relays more than the hold pays for), so a
 * chunk within it costs the relay one comparison. Past it, while the room
 * has more than an allowance to spare, check() takes the new text at
 * TOKENS_PER_CHAR and raises the hold for it uncounted (#fitsUncounted: no
 * tokenizer, whose ~80 MB and time per check 5,000 slow streams showed);
 * within the last allowance it counts the text with the tokenizer (from the
 * start, once, so an over-estimate never cuts), prices what the stream has
 * used (the prompt as held, or as the upstream reported it), and, when the
 * hold is less than half an allowance ahead of that, raises it to a whole
 * RESERVE_COMPLETION_TOKENS' worth ahead against what the balance and the
 * key's spend cap still have beyond every other request's hold
 * (synchronously: no other request takes the same room in between). Only
 * when the text does not fit in what is then held is the stream cut: the
 * chunk is not relayed, the text billed is what the client got, and
 * billable() keeps the bill within the hold.
 *
 * On a plan with monthly output tokens, the tokens held against the month
 * follow the answer the same way (also on a free model), and a month used up
 * cuts the stream as an empty balance does (token_limit_exceeded).
 *
 * A hold admitted larger than what the balance had left (admission asks only
 * for a balance above the other holds) is worth here only what the balance
 * covers: the ceiling is the hold less what the balance, or the key's cap,
 * lacks to cover every hold. So concurrent streams of one account, which
 * each see the others' holds, never take more than the balance together.
 */
export class StreamHold {
  /** Answer characters (TextPieces.chars) past which the relay calls check() before relaying more */
  next: number
  /** Why the stream was cut (the row's code and the client's error), null while it may go on */
  stopped: GatewayError | null = null
  /** Tokens counted in the text up to #countedChars */
  #tokens = 0
  #countedChars = 0
  /** The most the request may cost now: its hold, less what the balance or the key's cap lacks to cover the holds */
  #ceiling = 0n
  /** The key's cap, not the balance, is what is short */
  #keyShort = false
  /** Less than an allowance of room left (balance, key's cap or month): the next check assumes MAX_TOKENS_PER_CHAR */
  #tight = false
  /** #tokens holds text taken at TOKENS_PER_CHAR, not counted (room to spare: #fitsUncounted) */
  #uncounted = false
  /** The price the answer is held at: the model's, its audio or image output price for a spoken or image answer (reservation.ts holdPrice) */
  readonly #price: PriceInfo | null
  /** pico-USD per answer token; 0 for a free model (only the plan's monthly tokens are followed) */
  readonly #output: bigint
  readonly #step: bigint
  /** The plan's monthly output tokens (null: no limit) and the most this answer may use of them now */
  readonly #tokenLimit: number | null
  #tokenCeiling = Number.POSITIVE_INFINITY

  private constructor(private account: RequestAccount) {
    this.#price = holdPrice(account.price, account)
    this.#output = this.#price?.outputPico ?? 0n
    this.#step = BigInt(DEFAULT_COMPLETION_ALLOWANCE) * this.#output
    this.#tokenLimit = account.principal.plan?.monthlyOutputTokens ?? null
    this.#limits()
    this.next = this.#charsWithin(this.#costOf(0, null), 0)
  }

  /**
   * The hold of a stream about to be relayed; null when nothing bounds its
   * answer's tokens (a free model on a plan without monthly output tokens).
   */
  static open(account: RequestAccount): StreamHold | null {
    if (account.closed) return null
    const priced = account.price !== null && account.price.outputPico > 0n && account.reservedPico > 0n
    const limited = account.principal.plan !== null && account.principal.plan.monthlyOutputTokens !== null
    return priced || limited ? new StreamHold(account) : null
  }

  /**
   * Called by a relay when `text.chars` passed `next`, before it relays the
   * text pushed since character `before` (the chunk, or the event, that
   * passed it). True: relay it (the hold covers it, raised if need be).
   * False: the stream is cut here; `text` is taken back to `before` and
   * `stopped` says why. A promise when the count must wait for the
   * tokenizer (not loaded yet, or more than a slice to count).
   */
  check(text: TextPieces, before: number, usage: CanonicalUsage | null): boolean | Promise<boolean> {
    // Room to spare: the text is taken at TOKENS_PER_CHAR (more than English or code makes) and the hold
    // raised for it, uncounted. The tokenizer (~80 MB once loaded) and its time per check are for the
    // end of the room, where a cut must be exact (5,000 slow streams passing their hold: RSS 367 -> 443 MB).
    if (!this.#tight && this.#fitsUncounted(text, usage)) return true
    if (this.#uncounted) {
      // What was taken uncounted is counted now, from the start: the stream is not cut on an over-estimate.
      this.#uncounted = false
      this.#tokens = 0
      this.#countedChars = 0
    }
    const relayed = this.#count(text, this.#countedChars, before)
    const pending = this.#count(text, before, text.chars)
    if (typeof relayed === 'number' && typeof pending === 'number') return this.#decide(text, before, relayed, pending, usage)
    return Promise.all([relayed, pending]).then(([a, b]) => this.#decide(text, before, a, b, usage))
  }

  /**
   * A passed-through stream whose events are still kept undecoded (their
   * data's length is an upper bound of the text's characters): covers up to
   * `chars` characters by raising the hold, without counting, when the room
   * allows it (not near the end of the room, where counting is what keeps a
   * cut exact). True: `next` is at least `chars` now. Decoding a short
   * answer's events only to learn that a few words fit cost a short stream
   * ~20 µs (docs/benchmarks.md, twenty-first pass); a raise is a few BigInt
   * additions, held like check()'s until the stream closes.
   */
  coverUncounted(chars: number): boolean {
    if (this.#tight || this.stopped !== null) return false
    const tokens = this.#tokens + (chars - this.#countedChars) * Number(TOKENS_PER_CHAR)
    if (this.#output > 0n) this.#raiseTo(this.#costOf(tokens, null))
    if (this.#tokenLimit !== null) this.#raiseTokensTo(tokens)
    this.#limits()
    if (this.#tight) return false
    this.next = this.#charsWithin(this.#costOf(this.#tokens, null), this.#tokens)
    return this.next >= chars
  }

  /**
   * A cut stream's usage as billed: what it counted, within the ceiling (and
   * the plan's tokens). The checks keep the relayed text within it; text
   * denser than they assume (past TOKENS_PER_CHAR between two checks) is
   * billed up to it.
   */
  billable(usage: TokenUsage): TokenUsage {
    let completionTokens = usage.completionTokens
    if (completionTokens > this.#tokenCeiling) completionTokens = Math.max(0, this.#tokenCeiling)
    const price = this.account.price
    if (price !== null && this.#output > 0n && costOf(price, { ...usage, completionTokens }) > this.#ceiling) {
      const room = this.#ceiling - costOf(price, { ...usage, completionTokens: 0 })
      completionTokens = room <= 0n ? 0 : Math.min(completionTokens, Number(room / this.#output))
    }
    if (completionTokens === usage.completionTokens) return usage
    return { ...usage, completionTokens, totalTokens: usage.promptTokens + completionTokens, estimated: true }
  }

  /**
   * The text since the last check taken at TOKENS_PER_CHAR: the hold raised
   * for it as check() would; true when it fits with room to spare still
   * (then `next` moves on), false to count it (nothing cut here).
   */
  #fitsUncounted(text: TextPieces, usage: CanonicalUsage | null): boolean {
    const tokens = this.#tokens + (text.chars - this.#countedChars) * Number(TOKENS_PER_CHAR)
    const answered = this.#answered(tokens, usage)
    const cost = this.#costOf(tokens, usage)
    this.#keepAhead(cost, answered)
    if (this.#tight || answered > this.#tokenCeiling || cost > this.#ceiling) return false
    this.#uncounted = true
    this.#tokens = tokens
    this.#countedChars = text.chars
    this.next = this.#charsWithin(cost, answered)
    return true
  }

  #decide(text: TextPieces, before: number, relayed: number, pending: number, usage: CanonicalUsage | null): boolean {
    const tokens = this.#tokens + relayed + pending
    const answered = this.#answered(tokens, usage)
    const cost = this.#costOf(tokens, usage)
    this.#keepAhead(cost, answered)
    const tokensFit = answered <= this.#tokenCeiling
    if (tokensFit && cost <= this.#ceiling) {
      this.#tokens = tokens
      this.#countedChars = text.chars
      this.next = this.#charsWithin(cost, answered)
      return true
    }
    this.#tokens += relayed
    this.#countedChars = before
    text.truncate(before)
    this.next = Number.POSITIVE_INFINITY
    this.stopped = !tokensFit
      ? new GatewayError(
          429,
          'token_limit_exceeded',
          `This month's output token quota (${this.#tokenLimit} tokens) was reached during the answer: the answer was stopped here (what was sent is billed)`,
          'insufficient_quota'
        )
      : this.#keyShort
        ? new GatewayError(
            402,
            'spend_limit_exceeded',
            'This API key reached its spend limit during the answer: the answer was stopped here (what was sent is billed)',
            'insufficient_quota'
          )
        : new GatewayError(
            402,
            'insufficient_balance',
            'The balance ran out during the answer: the answer was stopped here (what was sent is billed). Top up your account to continue',
            'insufficient_quota'
          )
    return false
  }

  /**
   * Less than half an allowance ahead of what the answer costs (or uses of the month's tokens): raised to a
   * whole one ahead, as far as the balance, the key's cap and the plan have room (so a stream raises its
   * hold every few hundred tokens, not at each check); then the ceilings read again.
   */
  #keepAhead(cost: bigint, answered: number) {
    if (this.#output > 0n && this.account.reservedPico - cost < this.#step / 2n) this.#raiseTo(cost + this.#step)
    if (this.#tokenLimit !== null && this.account.heldOutputTokens - answered < DEFAULT_COMPLETION_ALLOWANCE / 2) {
      this.#raiseTokensTo(answered + DEFAULT_COMPLETION_ALLOWANCE)
    }
    this.#limits()
  }

  /** Raises the request's hold toward `wanted`, by what the balance and the key's cap have beyond all holds. */
  #raiseTo(wanted: bigint) {
    const held = this.account.reservedPico
    if (wanted <= held) return
    const room = roomBeyondHolds(this.account)
    let more = wanted - held
    if (room.balance < more) more = room.balance
    if (room.key !== null && room.key < more) more = room.key
    if (more > 0n) this.account.reserve(more)
  }

  /** Raises the request's hold on this month's output tokens toward `wanted`, by what the plan has beyond all holds. */
  #raiseTokensTo(wanted: number) {
    const held = this.account.heldOutputTokens
    const room = outputTokensBeyondHolds(this.account)
    if (wanted <= held || room === null) return
    const more = Math.min(wanted - held, room)
    if (more > 0) this.account.reserveTokens(0, more)
  }

  /**
   * The ceilings: the money hold, less what the balance (or the key's cap)
   * lacks to cover every request's hold; the output tokens held, less what
   * the plan's month lacks to cover every hold.
   */
  #limits() {
    this.#tight = false
    if (this.#output > 0n) {
      const room = roomBeyondHolds(this.account)
      // The tighter of the two is what a cut is told as.
      this.#keyShort = room.key !== null && room.key < room.balance
      const tightest = this.#keyShort ? room.key! : room.balance
      this.#ceiling = tightest < 0n ? this.account.reservedPico + tightest : this.account.reservedPico
      this.#tight = tightest < this.#step
    }
    const tokenRoom = outputTokensBeyondHolds(this.account)
    if (tokenRoom !== null) {
      this.#tokenCeiling = this.account.heldOutputTokens + (tokenRoom < 0 ? tokenRoom : 0)
      if (tokenRoom < DEFAULT_COMPLETION_ALLOWANCE) this.#tight = true
    }
  }

  /**
   * The answer character past which the next check is due: what the ceiling
   * (and the plan's tokens) leave at TOKENS_PER_CHAR, or at
   * MAX_TOKENS_PER_CHAR when the room is nearly spent
   */
  #charsWithin(cost: bigint, answered: number): number {
    const perChar = this.#tight ? MAX_TOKENS_PER_CHAR : TOKENS_PER_CHAR
    let chars = Number.MAX_SAFE_INTEGER
    if (this.#output > 0n) {
      if (cost >= this.#ceiling) return this.#countedChars
      const left = (this.#ceiling - cost) / (this.#output * perChar)
      if (left < BigInt(chars)) chars = Number(left)
    }
    const tokensLeft = Math.floor((this.#tokenCeiling - answered) / Number(perChar))
    if (tokensLeft < chars) chars = Math.max(0, tokensLeft)
    return this.#countedChars + chars
  }

  /** The answer's tokens as billed: counted, or what the upstream reported so far when more */
  #answered(tokens: number, usage: CanonicalUsage | null): number {
    return usage !== null && usage.outputTokens > tokens ? usage.outputTokens : tokens
  }

  /** What the stream costs with `tokens` of answer: the prompt as held (or as the upstream reported it), and the per-request price. */
  #costOf(tokens: number, usage: CanonicalUsage | null): bigint {
    const price = this.#price
    if (price === null || this.#output === 0n) return 0n
    const counted: TokenUsage = {
      promptTokens: usage?.inputTokens || this.account.promptTokenHold,
      completionTokens: this.#answered(tokens, usage),
      totalTokens: 0,
      cachedTokens: usage?.cacheReadTokens ?? 0,
      cacheWriteTokens: usage?.cacheWriteTokens ?? 0,
      reasoningTokens: 0,
      estimated: true,
    }
    // What else the upstream reported so far costs as the bill will price it (one-hour cache writes in
    // Anthropic's message_start, audio, web searches): priced as plain tokens, a prompt of one-hour
    // writes let the stream relay text the balance could not pay for (billable() then billed less than relayed).
    // The searches the request may still make (held at admission: webSearchHold) stay out of the text's room.
    if (usage !== null) withPricedExtras(counted, usage)
    const searches = usage?.webSearches && usage.webSearches > this.account.searchHold ? usage.webSearches : this.account.searchHold
    if (searches > 0) counted.webSearches = searches
    const cost = costOf(price, counted)
    return price.perRequestPico ? cost + price.perRequestPico : cost
  }

  /**
   * Tokens of the text between two characters: the kept part counted (at once
   * when short and the tokenizer is loaded), what is past the kept text (a
   * stream over 128 K characters) at the density counted so far.
   */
  #count(text: TextPieces, from: number, to: number): number | Promise<number> {
    if (to <= from) return 0
    const keptTo = to < text.keptChars ? to : text.keptChars
    const beyond = to - (from > keptTo ? from : keptTo)
    const density = this.#countedChars > 0 ? this.#tokens / this.#countedChars : 1
    const estimated = beyond > 0 ? Math.ceil(beyond * density) : 0
    if (from >= keptTo) return estimated
    const part = text.since(from).slice(0, keptTo - from)
    const now = countTokensNow(part)
    if (now !== null) return now + estimated
    return countTokens(part).then((counted) => counted + estimated)
  }
}
