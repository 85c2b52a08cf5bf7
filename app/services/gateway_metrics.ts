import { monitorEventLoopDelay } from 'node:perf_hooks'
import type { Gateway } from '#gateway/gateway'
import type { ChannelInfo } from '#gateway/types'
import { ExpositionWriter, labelSet } from '#gateway/metrics/exposition'
import { gatewayVersion } from '#services/gateway_status'

/**
 * GET /metrics' text: the per-request families the meter's hook counted
 * (gateway/metrics/request_metrics.ts) and gauges read now, at the scrape
 * (in flight, channels, the meter's queue, the process), so none of them
 * costs a request anything.
 */

/** Event-loop delay, sampled by Node every 20 ms from the first scrape on; each scrape reads and restarts it (as prom-client does). */
let loopDelay: ReturnType<typeof monitorEventLoopDelay> | null = null

const CHANNEL_STATES = ['enabled', 'cooling_down', 'circuit_open', 'disabled'] as const

/**
 * A channel's state now: disabled (by an operator or the gateway, or its key
 * unreadable with this APP_KEY: out of rotation alike), its circuit open,
 * some model of it cooling down (429/403), or enabled.
 */
function channelState(gateway: Gateway, channel: ChannelInfo, cooling: ReadonlySet<number>, now: number): (typeof CHANNEL_STATES)[number] {
  if (!channel.enabled || channel.keyUnreadable) return 'disabled'
  if (!gateway.health.isAvailable(channel.id, now)) return 'circuit_open'
  if (cooling.has(channel.id)) return 'cooling_down'
  return 'enabled'
}

export function gatewayMetrics(gateway: Gateway): string {
  const out = new ExpositionWriter()
  const channels = gateway.catalog.channels
  const names = new Map<number, string>()
  for (const channel of channels) names.set(channel.id, channel.name)
  // A channel deleted since its requests: its id (a new channel may have taken the name).
  gateway.metrics.write(out, (id) => names.get(id) ?? `#${id}`)

  const inFlight = gateway.service.inFlightCounts()
  out.family('gateway_requests_in_flight', 'gauge', 'Requests admitted and not yet metered (what MAX_INFLIGHT bounds), realtime sessions apart')
  out.sample('gateway_requests_in_flight', '', inFlight.requests)
  out.family('gateway_streams_open', 'gauge', 'Streaming requests in flight')
  out.sample('gateway_streams_open', '', inFlight.streams)
  out.family('gateway_realtime_sessions_open', 'gauge', 'Realtime (WebSocket) sessions open')
  out.sample('gateway_realtime_sessions_open', '', inFlight.realtimeSessions)

  const now = Date.now()
  const cooling = new Set(gateway.health.channelsWithModelCooldowns(now))
  out.family('gateway_channel_state', 'gauge', "A channel's state, one series per state, 1 for the current one")
  for (const channel of channels) {
    const state = channelState(gateway, channel, cooling, now)
    for (const s of CHANNEL_STATES) {
      out.sample('gateway_channel_state', labelSet(['channel', 'provider', 'state'], [channel.name, channel.provider, s]), s === state ? 1 : 0)
    }
  }

  const meter = gateway.meter
  out.family('gateway_meter_queued_records', 'gauge', 'Usage records waiting to be written to the database')
  out.sample('gateway_meter_queued_records', '', meter.queued)
  out.family('gateway_meter_spilled_records', 'gauge', 'Usage records in the spill file, waiting for the database')
  out.sample('gateway_meter_spilled_records', '', meter.spilledPending)
  out.family('gateway_meter_degraded', 'gauge', '1 while the database is unreachable and usage records are spilled to disk')
  out.sample('gateway_meter_degraded', '', meter.degraded ? 1 : 0)
  out.family('gateway_meter_spilled_records_total', 'counter', 'Usage records spilled to disk since the process started')
  out.sample('gateway_meter_spilled_records_total', '', meter.spilledTotal)
  out.family('gateway_meter_replayed_records_total', 'counter', 'Spilled usage records written to the database since the process started')
  out.sample('gateway_meter_replayed_records_total', '', meter.replayedTotal)

  const memory = process.memoryUsage()
  out.family('process_resident_memory_bytes', 'gauge', 'Resident memory size in bytes')
  out.sample('process_resident_memory_bytes', '', memory.rss)
  out.family('nodejs_heap_size_used_bytes', 'gauge', 'V8 heap used, bytes')
  out.sample('nodejs_heap_size_used_bytes', '', memory.heapUsed)
  out.family('nodejs_heap_size_total_bytes', 'gauge', 'V8 heap size, bytes')
  out.sample('nodejs_heap_size_total_bytes', '', memory.heapTotal)
  out.family('nodejs_external_memory_bytes', 'gauge', 'Memory of C++ objects bound to JavaScript (buffers), bytes')
  out.sample('nodejs_external_memory_bytes', '', memory.external)

  if (loopDelay === null) {
    loopDelay = monitorEventLoopDelay({ resolution: 20 })
    loopDelay.enable()
  }
  const delay = loopDelay
  const seconds = (ns: number) => (delay.count > 0 ? ns / 1e9 : 0)
  const gaugeOf = (name: string, help: string, value: number) => {
    out.family(name, 'gauge', help)
    out.sample(name, '', value)
  }
  gaugeOf('nodejs_eventloop_lag_mean_seconds', 'Mean event-loop delay since the previous scrape', seconds(delay.mean))
  gaugeOf('nodejs_eventloop_lag_p50_seconds', 'Median event-loop delay since the previous scrape', seconds(delay.percentile(50)))
  gaugeOf('nodejs_eventloop_lag_p99_seconds', '99th percentile of the event-loop delay since the previous scrape', seconds(delay.percentile(99)))
  gaugeOf('nodejs_eventloop_lag_max_seconds', 'Longest event-loop delay since the previous scrape', seconds(delay.max))
  delay.reset()

  const uptime = process.uptime()
  gaugeOf('process_start_time_seconds', 'Start time of the process since the Unix epoch, seconds', Math.round(Date.now() / 1000 - uptime))
  gaugeOf('gateway_uptime_seconds', 'Seconds since the process started', Math.floor(uptime))
  out.family('gateway_build_info', 'gauge', 'The running version (package.json), always 1')
  out.sample('gateway_build_info', labelSet(['version'], [gatewayVersion()]), 1)
  return out.text()
}
