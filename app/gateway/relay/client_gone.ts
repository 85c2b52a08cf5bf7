import type { ServerResponse } from 'node:http'
import { GatewayError } from '#exceptions/gateway_error'
import type { RequestAccount } from '#gateway/metering/request_account'
import { ClientGoneError } from '#gateway/upstream/dispatcher'
import type { TokenUsage } from '#gateway/types'

/**
 * Runs a call's upstream part with the client's disconnect wired to the
 * request's abort: a client gone before or during the answer ends the
 * upstream call and is a 499 `client_closed` row billed `goneUsage()` (the
 * upstream worked all the same). Used by the relayed services (completions,
 * audio); GatewayService.generate wires the same inline, on the hot path.
 */
export async function whileClientListens(
  res: ServerResponse,
  account: RequestAccount,
  goneUsage: () => TokenUsage | Promise<TokenUsage>,
  work: (signal: AbortSignal) => Promise<void>
) {
  const abort = account.abort
  const onClose = () => {
    if (!res.writableFinished) abort.abort()
  }
  res.on('close', onClose)
  // Gone already (while its key, user or body was read): its 'close' is past.
  if (res.closed) onClose()
  try {
    await work(abort.signal)
  } catch (error) {
    if (error instanceof ClientGoneError || (abort.signal.aborted && !(error instanceof GatewayError))) {
      return account.close(499, 'client_closed', await goneUsage())
    }
    throw error
  } finally {
    res.off('close', onClose)
  }
}
