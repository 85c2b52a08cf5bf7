import { test } from '@japa/runner'
import { IncomingMessage, ServerResponse } from 'node:http'
import { Socket } from 'node:net'
import { RequestFactory } from '@adonisjs/core/factories/http'
import { trustedProxies } from '#services/trusted_proxies'
import { requestBaseUrl } from '#controllers/pages/docs_controller'

/** A request from `peer` with these headers, under a TRUSTED_PROXIES setting. */
function requestFrom(peer: string, headers: Record<string, string>, setting: string | undefined) {
  const socket = new Socket()
  Object.defineProperty(socket, 'remoteAddress', { value: peer })
  const req = new IncomingMessage(socket)
  req.headers = headers
  req.url = '/docs'
  return new RequestFactory()
    .merge({ req, res: new ServerResponse(req), config: { trustProxy: trustedProxies(setting) } })
    .create()
}

// Adonis memoises the trust decision per peer address for the process's
// life (the setting never changes at run time): each case uses its own peer.
const forwarded = { 'host': '127.0.0.1:3333', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'api.example.com' }

test.group('/docs base URL', () => {
  test('without TRUSTED_PROXIES the Host header is used and X-Forwarded-* ignored', ({ assert }) => {
    assert.equal(requestBaseUrl(requestFrom('127.0.0.11', forwarded, undefined)), 'http://127.0.0.1:3333')
    assert.equal(requestBaseUrl(requestFrom('127.0.0.11', { host: 'gw.local:8080' }, undefined)), 'http://gw.local:8080')
  })

  test('a trusted proxy supplies the scheme and host', ({ assert }) => {
    assert.equal(requestBaseUrl(requestFrom('127.0.0.12', forwarded, 'loopback')), 'https://api.example.com')
    assert.equal(requestBaseUrl(requestFrom('10.1.2.3', forwarded, '10.0.0.0/8')), 'https://api.example.com')
    assert.equal(requestBaseUrl(requestFrom('203.0.113.9', forwarded, 'true')), 'https://api.example.com')
  })

  test('a peer outside TRUSTED_PROXIES cannot spoof the base URL', ({ assert }) => {
    assert.equal(requestBaseUrl(requestFrom('203.0.113.10', forwarded, 'loopback,10.0.0.0/8')), 'http://127.0.0.1:3333')
  })
})
