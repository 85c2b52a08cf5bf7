import { test } from '@japa/runner'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { whileClientListens } from '#gateway/relay/client_gone'
import type { RequestAccount } from '#gateway/metering/request_account'

/**
 * whileClientListens aborts the work when the client hangs up. A client
 * that hung up before the work began (while its key, user or body was
 * read) left its response's 'close' in the past: the work must be aborted
 * at once all the same, not run to the end for nobody.
 */
test.group('whileClientListens', () => {
  test('a client already gone when the work starts: the work is aborted at once, the row is a 499', async ({ assert }) => {
    let outcome: { signalAborted: boolean; closed: unknown[] } | null = null
    const done = new Promise<void>((resolve) => {
      const server = http.createServer((req, res) => {
        req.resume()
        req.socket.destroy()
        setTimeout(async () => {
          const closed: unknown[] = []
          const account = { abort: new AbortController(), close: (...args: unknown[]) => closed.push(args) } as unknown as RequestAccount
          let signalAborted = false
          await whileClientListens(res, account, () => ({}) as any, async (signal) => {
            signalAborted = signal.aborted
            if (signal.aborted) throw new Error('aborted before any work')
          })
          outcome = { signalAborted, closed }
          server.close()
          resolve()
        }, 50)
      })
      server.listen(0, '127.0.0.1', () => {
        const request = http.request({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, method: 'POST' })
        request.on('error', () => {})
        request.end('{}')
      })
    })
    await done
    assert.isTrue(outcome!.signalAborted)
    assert.deepEqual(outcome!.closed, [[499, 'client_closed', {}]])
  })
})
