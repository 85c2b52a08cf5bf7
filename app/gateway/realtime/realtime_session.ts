import { WebSocket, type RawData } from 'ws'
import { limitFor } from '#gateway/limits/model_limits'
import { GatewayError } from '#exceptions/gateway_error'
import { authorizeModel, modelAllowed } from '#gateway/access_policy'
import { resolvePrincipalByHash } from '#gateway/auth/key_resolver'
import type { Gateway } from '#gateway/gateway'
import type { InFlightWork } from '#gateway/gateway_service'
import { isPriced, priceForPlan } from '#gateway/metering/pricing'
import type { RequestAccount } from '#gateway/metering/request_account'
import { DEFAULT_COMPLETION_ALLOWANCE, holdAtPrice } from '#gateway/metering/reservation'
import { holdOnKey, releaseOnKey } from '#gateway/metering/key_reservations'
import { clientFacing } from '#gateway/http/client_message'
import type { RouteCandidate } from '#gateway/routing/channel_router'
import { withoutChannelSecrets } from '#gateway/upstream/channel_secrets'
import { ZERO_USAGE, type Principal } from '#gateway/types'
import {
  errorEvent,
  itemIdOf,
  readResponseDone,
  requestedModels,
  transcriptionModelOf,
  transcriptionUsage,
  watchedEventOf,
} from '#gateway/realtime/realtime_events'
import type { RealtimeLimits } from '#gateway/realtime/realtime_limits'
import type { UpstreamConnection } from '#gateway/realtime/upstream_socket'

/** How a session ends when the gateway ends it: the close code and, for the client, an `error` event first. */
interface Ending {
  closeCode: number
  reason: string
  error?: { type: string; code: string; message: string }
}

/** What an in-progress response's row says when the session ends before its response.done. */
interface Cut {
  status: number
  code: string
}

/**
 * One realtime session: the client's WebSocket and the upstream's, relayed
 * both ways frame for frame (text and binary, untouched), and metered per
 * response.
 *
 * Relay: a frame goes on as it came (an upstream `error` event without the
 * channel's key and address, as HTTP relays conceal them); when the receiving side's send buffer
 * passes `highWaterBytes` the sending side is paused until that frame is
 * flushed, so a slow reader slows its peer instead of filling the gateway's
 * memory. Each side's pings are answered by ws; the gateway pings both every
 * `heartbeatMs` and drops a side that did not answer the previous one. A
 * close on one side closes the other with the same code (1005/1006, which
 * cannot be sent, become a plain close toward the upstream and 1014 toward
 * the client when the upstream vanished).
 *
 * Metering: `response.created` opens an account for that response (holding
 * DEFAULT_COMPLETION_ALLOWANCE output tokens at the model's price, as an HTTP
 * call holds its estimate); `response.done` closes it with the usage it
 * reports: one usage row per response (endpoint `realtime`), through the
 * meter, with its ledger charge. After each response (and before a new one
 * runs) the key, the model's permission, the key's cap, the plan's monthly
 * tokens and the balance are checked again: a session that may not go on gets
 * an `error` event in OpenAI's shape and is closed (1008).
 *
 * Ending: when the client leaves, the session hits REALTIME_MAX_SESSION_MINUTES,
 * the balance runs out or the gateway shuts down while a response runs, the
 * upstream is asked to cancel it (`response.cancel`) and its response.done
 * (which carries the usage of what was generated) is waited for up to
 * `cancelWaitMs`, so the tokens the provider bills are billed too. A response
 * whose done never came is recorded with no usage (499 client_closed, 502
 * upstream_closed, 503 shutting_down).
 */
export class RealtimeSession implements InFlightWork {
  readonly abort = new AbortController()
  readonly realtime = true
  /** Gives the session's in-flight place back (GatewayService.admitSession) */
  release: () => void = () => {}
  #client: WebSocket | null = null
  #upstream: WebSocket | null = null
  #candidate: RouteCandidate | null = null
  /** Responses in progress, by the upstream's response id */
  #responses = new Map<string, RequestAccount>()
  #ending: Ending | null = null
  #finished = false
  #clientGone = false
  #heartbeat: NodeJS.Timeout | null = null
  #lifetime: NodeJS.Timeout | null = null
  #cancelWait: NodeJS.Timeout | null = null
  #alive = { client: true, upstream: true }
  /** A check of the key and balance running (one at a time: they come after responses, seconds apart) */
  #checking: Promise<void> | null = null

  constructor(
    private gateway: Gateway,
    private principal: Principal,
    /** The key's SHA-256, kept to re-read it from the catalog after each response (revoked, expired, disabled) */
    private keyHash: string,
    readonly model: string,
    private tags: string[] | null,
    private limits: RealtimeLimits
  ) {}

  /**
   * A WebRTC call's sideband (realtime_calls.ts) has no client socket: the
   * media and the client's events go between the browser and the provider.
   * The session only meters what the upstream reports, and when it ends,
   * ended by the gateway (the balance, the length limit, a shutdown) or its
   * sideband closed under it (dropped: the call's usage is no longer read),
   * this hangs the call up.
   */
  onEnd: (() => void) | null = null
  /**
   * False for a client's own sideband of a WebRTC call (`?call_id=`): relayed
   * only, its responses being the call's, which the gateway's sideband meters.
   */
  metered = true
  /**
   * A transcription session (`?intent=transcription`, transcription_sessions.ts):
   * `model` is its transcription model, routed; the model a client event
   * names goes up as the channel's name for it, and each completed
   * transcription is metered under the gateway's name.
   */
  transcription = false

  /**
   * Relays and meters from now on; the client's handshake is complete (or, a
   * call's sideband, no client) and the upstream's open (and paused).
   * `waiting`: the client's frames that came before the upstream was opened
   * (a transcription session's, which waited for its model), sent up first.
   */
  start(client: WebSocket | null, connection: UpstreamConnection, waiting: Array<{ data: Buffer; isBinary: boolean }> = []) {
    const upstream = connection.socket
    this.#client = client
    this.#upstream = upstream
    this.#candidate = connection.candidate
    if (this.transcription) this.#gatewayNames.set(connection.candidate.upstreamModel, this.model)
    for (const frame of waiting) if (client !== null) this.#fromClient(client, upstream, frame.data, frame.isBinary)
    client?.on('message', (data, isBinary) => this.#fromClient(client, upstream, data as Buffer, isBinary))
    const fromUpstream = (data: RawData, isBinary: boolean) => {
      const event = isBinary ? null : watchedEventOf(data as Buffer)
      // The upstream's own error reaches the client without the channel's key and address (as HTTP's error events).
      if (event === 'error') return this.#forward(upstream, client, this.#concealed(data as Buffer), false)
      this.#forward(upstream, client, data, isBinary)
      if (!this.metered) return
      if (event === 'response.created') this.#responseCreated(data as Buffer)
      else if (event === 'response.done') this.#responseDone(data as Buffer)
      else if (event === 'conversation.item.input_audio_transcription.completed') this.#transcribed(data as Buffer)
      else if (event === 'input_audio_buffer.committed' || event === 'conversation.item.input_audio_transcription.failed') this.#transcribing(event, data as Buffer)
      else if (event === 'session.created' || event === 'session.updated' || event === 'transcription_session.created' || event === 'transcription_session.updated') {
        const model = transcriptionModelOf(data as Buffer)
        if (model !== undefined) this.#transcriptionModel = model
        // A call's browser updates its session through its data channel, which the gateway never sees (a
        // client's session.update here is checked before it goes up): a transcription model set there that
        // the key may not use (billed apart, at its own price, or none) ends the call.
        if (client === null && model && !modelAllowed(this.principal, model)) {
          const refusal = GatewayError.modelNotAllowed(model.slice(0, 200))
          this.#end({ closeCode: 1008, reason: refusal.code, error: { type: refusal.type, code: refusal.code, message: refusal.message } })
        }
      }
    }
    connection.stopCollecting()
    for (const frame of connection.early) fromUpstream(frame.data, frame.isBinary)
    connection.early.length = 0
    upstream.on('message', fromUpstream)
    upstream.resume()
    client?.on('pong', () => (this.#alive.client = true))
    upstream.on('pong', () => (this.#alive.upstream = true))
    // A 'close' follows every error.
    client?.on('error', () => {})
    upstream.on('error', () => {})
    client?.on('close', (code, reason) => this.#clientClosed(code, reason))
    upstream.on('close', (code, reason) => this.#upstreamClosed(code, reason))
    this.#heartbeat = setInterval(() => this.#ping(), this.limits.heartbeatMs).unref()
    this.#lifetime = setTimeout(
      () =>
        this.#end({
          closeCode: 1000,
          reason: 'session length limit reached',
          error: {
            type: 'invalid_request_error',
            code: 'session_expired',
            message: `The session reached its maximum duration (${Math.round(this.limits.maxSessionMs / 60_000)} minutes on this gateway)`,
          },
        }),
      this.limits.maxSessionMs
    ).unref()
    // The shutdown's grace is over: everything ends now, nothing more is waited for.
    this.abort.signal.addEventListener('abort', () => this.#finish({ status: 503, code: 'shutting_down' }, 1001, 'gateway shutting down'))
    // A shutdown began while the upstream was being opened.
    if (this.#draining) this.onDrain()
  }

  /** Started: the relay (or a sideband's metering) runs */
  get started(): boolean {
    return this.#upstream !== null
  }

  #draining = false

  /** A shutdown started: the session ends now (1001), a response in progress first cancelled and metered. */
  onDrain() {
    this.#draining = true
    if (this.#upstream === null) return
    this.#end({ closeCode: 1001, reason: 'gateway shutting down' })
  }

  get responsesInProgress(): number {
    return this.#responses.size
  }

  #forward(from: WebSocket, to: WebSocket | null, data: RawData, isBinary: boolean) {
    if (to === null || to.readyState !== WebSocket.OPEN) return
    if (to.bufferedAmount < this.limits.highWaterBytes) {
      to.send(data as Buffer, { binary: isBinary })
      return
    }
    // The reader is behind: stop reading its peer until this frame (and all before it) is flushed.
    from.pause()
    to.send(data as Buffer, { binary: isBinary }, () => from.resume())
  }

  /**
   * A client's frame goes up as it came, unless it sets a model of the
   * session. The input audio transcription's is billed apart (#transcribed):
   * it must be one the plan's and the key's globs allow, as the session's
   * own model. The session's model stays the one it was opened with (each
   * response is metered as it; OpenAI refuses a change, an OpenAI-compatible
   * server such as LocalAI would switch). A refused event is answered with
   * an `error` event (as OpenAI answers a session.update it refuses) and
   * not sent, the session going on as it was; an allowed one goes up as the
   * gateway read it.
   */
  #fromClient(client: WebSocket, upstream: WebSocket, data: Buffer, isBinary: boolean) {
    const requested = requestedModels(data)
    if (requested === null) return this.#forward(client, upstream, data, isBinary)
    const refuse = (code: string, message: string, param: string | null, eventId: string | null) => {
      if (client.readyState === WebSocket.OPEN) client.send(errorEvent('invalid_request_error', code, message, param, eventId))
    }
    if (requested === 'unreadable') {
      // A binary frame is no JSON event (audio to a server that takes it raw): its bytes may hold a `\u` by chance.
      if (isBinary) return this.#forward(client, upstream, data, isBinary)
      return refuse('invalid_json', 'The event is not a JSON object the gateway can read: it was not sent on', null, null)
    }
    const { sessionModel, eventId } = requested
    if (sessionModel !== null && sessionModel !== this.model && sessionModel !== this.#candidate!.upstreamModel) {
      return refuse(
        'model_change_not_supported',
        `The session's model is the one it was opened with ('${this.model}'): open a new session for '${sessionModel.slice(0, 200)}'`,
        'session.model',
        eventId
      )
    }
    for (const { model, param, setting } of requested.transcription) {
      if (model !== '' && !modelAllowed(this.principal, model)) {
        const refusal = GatewayError.modelNotAllowed(model.slice(0, 200))
        return refuse(refusal.code, `${refusal.message}: the input audio transcription stays as it was`, param, eventId)
      }
      if (!this.transcription || model === '') continue
      if (model !== this.model) {
        // Another model is another model's calls: its cap, budget and the balance, as the session's own was checked.
        try {
          authorizeModel(this.gateway.catalog, this.principal, model)
        } catch (error) {
          if (!(error instanceof GatewayError)) throw error
          return refuse(error.code, `${error.message}: the input audio transcription stays as it was`, param, eventId)
        }
      }
      const upstreamName = this.#channelNameOf(model)
      if (upstreamName === null) {
        return refuse(
          'model_change_not_supported',
          `This transcription session's channel does not serve '${model.slice(0, 200)}': open a new session (?intent=transcription) for it`,
          param,
          eventId
        )
      }
      setting.model = upstreamName
    }
    this.#forward(client, upstream, Buffer.from(JSON.stringify(requested.event)), false)
  }

  /** A transcription session's gateway model names, by the channel's name for them (the upstream's events name the latter) */
  #gatewayNames = new Map<string, string>()

  /**
   * The channel's name for a transcription model a client event names: the
   * session's own model's, or another's the session's channel serves (the
   * key's plan routing it there); null when the channel does not serve it.
   * Read on session updates only (a few per session).
   */
  #channelNameOf(model: string): string | null {
    const candidate = this.#candidate!
    if (model === this.model) return candidate.upstreamModel
    const served = this.gateway.service
      .router(this.principal.plan)
      .route(model)
      .find((c) => c.channel.id === candidate.channel.id)
    if (served === undefined) return null
    this.#gatewayNames.set(served.upstreamModel, model)
    return served.upstreamModel
  }

  #ping() {
    for (const side of ['client', 'upstream'] as const) {
      const socket = side === 'client' ? this.#client : this.#upstream
      if (socket === null || socket.readyState !== WebSocket.OPEN) continue
      // Paused for backpressure: its pong is not read either, and its peer's slowness is not its death.
      if (socket.isPaused) continue
      // No answer to the last ping: the peer is gone without a close (a dead network path).
      if (!this.#alive[side]) {
        socket.terminate()
        continue
      }
      this.#alive[side] = false
      socket.ping()
    }
  }

  /** An upstream error event's bytes, rewritten only when they name the channel's key, extra headers or address. */
  #concealed(frame: Buffer): Buffer {
    const text = frame.toString('utf8')
    const concealed = withoutChannelSecrets(text, this.#candidate!.channel)
    return concealed === text ? frame : Buffer.from(concealed)
  }

  #responseCreated(frame: Buffer) {
    let id = ''
    try {
      id = String(JSON.parse(frame.toString('utf8'))?.response?.id ?? '')
    } catch {}
    if (this.#responses.has(id)) return
    this.#responses.set(id, this.#openResponse())
    // A response that starts when the session may no longer spend (another call emptied the balance) is cancelled.
    if (this.#ending === null) this.#checkStanding()
  }

  #responseDone(frame: Buffer) {
    const done = readResponseDone(frame)
    const account = this.#responses.get(done.id) ?? this.#openResponse()
    this.#responses.delete(done.id)
    account.close(200, done.status === 'completed' ? null : `response_${done.status}`, done.usage ?? ZERO_USAGE)
    if (this.#ending !== null) {
      if (this.#unfinished === 0) this.#afterCancelWait()
      return
    }
    this.#checkStanding()
  }

  /**
   * A transcription session's audio committed and not transcribed yet, by
   * item id: when the session ends, their completed events (what the
   * provider bills) are waited for as a cancelled response's done is.
   */
  #pendingItems = new Set<string>()

  /** Responses running and transcriptions coming: what an end waits for */
  get #unfinished(): number {
    return this.#responses.size + this.#pendingItems.size
  }

  #transcribing(event: 'input_audio_buffer.committed' | 'conversation.item.input_audio_transcription.failed', frame: Buffer) {
    if (!this.transcription) return
    const item = itemIdOf(frame)
    if (item === null) return
    if (event === 'input_audio_buffer.committed') this.#pendingItems.add(item)
    else this.#itemDone(item)
  }

  #itemDone(item: string) {
    if (!this.#pendingItems.delete(item)) return
    if (this.#ending !== null && this.#unfinished === 0) this.#afterCancelWait()
  }

  /** The input audio transcription model the upstream says the session uses (session.created / updated) */
  #transcriptionModel: string | null = null

  /**
   * The transcription of the user's audio, which OpenAI bills apart at the
   * transcription model's prices (tokens, or seconds for whisper-1): its own
   * row (endpoint `realtime.transcription`), named after that model (the
   * session's model when the upstream never said which).
   */
  #transcribed(frame: Buffer) {
    const completed = transcriptionUsage(frame)
    if (completed === null) return
    const { usage, item } = completed
    // One row per transcribed item: an upstream repeating an event does not bill it twice.
    if (item !== null) {
      if (this.#transcribedItems.has(item)) return
      this.#transcribedItems.add(item)
    }
    const served = this.#transcriptionModel ?? (this.transcription ? this.#candidate!.upstreamModel : this.model)
    const model = this.#gatewayNames.get(served) ?? served
    const account = this.gateway.service.responseAccount(this.principal, 'realtime.transcription')
    const candidate = this.#candidate!
    account.model = model
    account.tags = this.tags
    account.channelId = candidate.channel.id
    account.provider = candidate.channel.provider
    account.servedModel = served
    account.attempts.push({ attempt: 1, channelId: candidate.channel.id, status: 101, outcome: 'ok', error: null, latencyMs: 0 })
    account.price = priceForPlan(this.gateway.catalog.priceFor(model), this.principal.plan)
    if (this.transcription) {
      // A transcription session is its model's calls: its tokens count on the key's window and budget for it.
      const modelLimits = this.principal.key.modelLimits
      const modelEntry = modelLimits === null ? undefined : limitFor(modelLimits, model)
      if (modelEntry !== undefined && (modelEntry.rpm !== null || modelEntry.tpm !== null)) account.modelLimit = modelEntry
      account.modelBudget = modelEntry?.budget ?? null
    }
    account.close(200, null, usage)
    this.#meteredModel = model
    this.#itemDone(item === null ? '' : item.slice(0, item.lastIndexOf(':')))
    // No responses to check after: a transcription session is checked after each transcription (the balance, the key, the cap).
    if (this.transcription && this.#ending === null) this.#checkStanding()
  }

  /** The model of the last transcription metered: what a transcription session's standing is checked for */
  #meteredModel: string | null = null

  /** Items already metered (`item_id` + `content_index`) */
  #transcribedItems = new Set<string>()

  /** The account of one response, priced and holding its estimate as an HTTP call of the model would. */
  #openResponse(): RequestAccount {
    const account = this.gateway.service.responseAccount(this.principal, 'realtime')
    const candidate = this.#candidate!
    account.model = this.model
    // The response's tokens count on the key's window for the model (the session was admitted there).
    const modelLimits = this.principal.key.modelLimits
    const modelEntry = modelLimits === null ? undefined : limitFor(modelLimits, this.model)
    if (modelEntry !== undefined && (modelEntry.rpm !== null || modelEntry.tpm !== null)) account.modelLimit = modelEntry
    account.stream = true
    account.tags = this.tags
    account.channelId = candidate.channel.id
    account.provider = candidate.channel.provider
    account.servedModel = candidate.upstreamModel
    account.attempts.push({ attempt: 1, channelId: candidate.channel.id, status: 101, outcome: 'ok', error: null, latencyMs: 0 })
    const price = priceForPlan(this.gateway.catalog.priceFor(this.model), this.principal.plan)
    account.price = price
    // The key's budget for the model (limits/model_budgets.ts): the hold and the cost count on it.
    account.modelBudget = modelEntry?.budget ?? null
    // A response may be all audio: its estimate is held at the dearer of the output prices.
    if (isPriced(price)) {
      const audio = price!.audioOutputPico
      account.reserve(holdAtPrice(audio !== undefined && audio > price!.outputPico ? { ...price!, outputPico: audio } : price, 0, DEFAULT_COMPLETION_ALLOWANCE))
    }
    const { plan } = this.principal
    if (plan && (plan.monthlyInputTokens !== null || plan.monthlyOutputTokens !== null)) account.reserveTokens(0, DEFAULT_COMPLETION_ALLOWANCE)
    return account
  }

  /**
   * May the session go on? The key as the catalog has it now (revoked,
   * expired, its owner disabled), the model still allowed, the key's cap,
   * the plan's monthly tokens, the balance: what an HTTP call is asked.
   */
  #checkStanding() {
    if (this.#checking !== null) return
    this.#checking = (async () => {
      try {
        const principal = await resolvePrincipalByHash(this.gateway.catalog, this.keyHash)
        this.principal = principal
        // authorizeModel counts what requests in flight hold: this session's own responses are not others'.
        const { user, key, plan, team, org, member } = principal
        const held = this.#heldHere()
        const heldTokens = plan && (plan.monthlyInputTokens !== null || plan.monthlyOutputTokens !== null) ? this.#responses.size * DEFAULT_COMPLETION_ALLOWANCE : 0
        user.reservedPico -= held
        user.reservedOutputTokens -= heldTokens
        if (key.spendLimitPico !== null) releaseOnKey(key.id, held)
        if (team !== null) team.heldPico -= held
        if (org !== null) org.heldPico -= held
        if (member !== null) member.heldPico -= held
        // And off the key's budget for the model each response holds on (a session ended itself early on its own holds).
        for (const account of this.#responses.values()) if (account.modelBudget !== null) account.modelBudget.heldPico -= account.reservedPico
        try {
          authorizeModel(this.gateway.catalog, principal, (this.transcription ? this.#meteredModel : null) ?? this.model)
        } finally {
          user.reservedPico += held
          user.reservedOutputTokens += heldTokens
          if (key.spendLimitPico !== null) holdOnKey(key.id, held)
          if (team !== null) team.heldPico += held
          if (org !== null) org.heldPico += held
          if (member !== null) member.heldPico += held
          for (const account of this.#responses.values()) if (account.modelBudget !== null) account.modelBudget.heldPico += account.reservedPico
        }
      } catch (error) {
        // Only a refusal ends the session; a check that could not run (the database away) lets it go on.
        if (!(error instanceof GatewayError)) return
        const refusal = clientFacing(error)
        this.#end({
          closeCode: 1008,
          reason: refusal.code.slice(0, 100),
          error: { type: refusal.type, code: refusal.code, message: refusal.message },
        })
      } finally {
        this.#checking = null
      }
    })()
  }

  #heldHere(): bigint {
    let held = 0n
    for (const account of this.#responses.values()) held += account.reservedPico
    return held
  }

  #clientClosed(code: number, reason: Buffer) {
    this.#clientGone = true
    if (this.#ending === null) this.#end({ closeCode: sendable(code) ? code : 1000, reason: reason.toString('utf8') })
    else if (this.#unfinished === 0) this.#afterCancelWait()
  }

  #upstreamClosed(code: number, reason: Buffer) {
    // A response the upstream never finished: nothing reported, nothing to bill.
    const cut = { status: 502, code: 'upstream_closed' }
    // Closed while the gateway was ending the session: the client gets the gateway's reason.
    if (this.#ending !== null) return this.#finish(cut, this.#ending.closeCode, this.#ending.reason)
    const said = withoutChannelSecrets(reason.toString('utf8'), this.#candidate!.channel)
    this.#finish(cut, sendable(code) ? code : code === 1005 ? 1000 : 1014, said || 'upstream closed the connection')
  }

  /**
   * The gateway ends the session: the client is told why (an `error` event),
   * a response in progress is cancelled upstream and its response.done (with
   * its usage) waited for, up to cancelWaitMs; then both sides close.
   */
  #end(ending: Ending) {
    if (this.#ending !== null || this.#finished) return
    this.#ending = ending
    const client = this.#client
    if (ending.error && client !== null && client.readyState === WebSocket.OPEN) {
      client.send(errorEvent(ending.error.type, ending.error.code, ending.error.message))
    }
    const upstream = this.#upstream
    if (this.#unfinished === 0 || upstream === null || upstream.readyState !== WebSocket.OPEN) return this.#afterCancelWait()
    for (const id of this.#responses.keys()) {
      upstream.send(JSON.stringify(id ? { type: 'response.cancel', response_id: id } : { type: 'response.cancel' }))
    }
    this.#cancelWait = setTimeout(() => this.#afterCancelWait(), this.limits.cancelWaitMs).unref()
  }

  #afterCancelWait() {
    if (this.#finished) return
    const ending = this.#ending!
    // A response whose done did not come in time: the client left, or the gateway ended the session.
    const cut = this.#clientGone ? { status: 499, code: 'client_closed' } : { status: 504, code: 'response_unfinished' }
    this.#finish(cut, ending.closeCode, ending.reason)
  }

  /** Closes both sides and every account still open; gives the session's place back. Once. */
  #finish(cut: Cut, closeCode: number, reason: string) {
    if (this.#finished) return
    this.#finished = true
    if (this.#heartbeat) clearInterval(this.#heartbeat)
    if (this.#lifetime) clearTimeout(this.#lifetime)
    if (this.#cancelWait) clearTimeout(this.#cancelWait)
    for (const account of this.#responses.values()) account.close(cut.status, cut.code, ZERO_USAGE)
    this.#responses.clear()
    const said = closeReason(reason)
    closeSocket(this.#client, closeCode, said)
    // The upstream gets the client's own close; a session the gateway ended closes it normally.
    closeSocket(this.#upstream, this.#clientGone ? closeCode : 1000, this.#clientGone ? said : '')
    // A call ends with its sideband, however it closed (after a response in progress was cancelled and metered):
    // a call left running with no sideband would go on unmetered. Hung up once (a call ended already: a 404, quiet).
    this.onEnd?.()
    this.release()
  }
}

/** Close codes a peer may send (1005, 1006 and 1015 are only ever reported, never sent). */
function sendable(code: number): boolean {
  return (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) || (code >= 3000 && code <= 4999)
}

/** A close reason is at most 123 bytes of UTF-8: longer ones are cut between characters. */
function closeReason(reason: string): string {
  let said = reason
  while (Buffer.byteLength(said, 'utf8') > 123) said = said.slice(0, -1)
  return said
}

function closeSocket(socket: WebSocket | null, code: number, reason: string) {
  if (socket === null || socket.readyState === WebSocket.CLOSED || socket.readyState === WebSocket.CLOSING) return
  try {
    socket.close(sendable(code) ? code : 1000, reason)
  } catch {
    socket.terminate()
  }
}
