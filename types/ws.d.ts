/**
 * The part of the `ws` package (8.x) the gateway uses: the realtime relay
 * (app/gateway/realtime/) and its tests. `@types/ws` is not installed; this
 * declares what is called, as ws documents it.
 */
declare module 'ws' {
  import { EventEmitter } from 'node:events'
  import type { IncomingMessage, ClientRequest, IncomingHttpHeaders } from 'node:http'
  import type { Duplex } from 'node:stream'
  import type { Agent } from 'node:http'

  export type RawData = Buffer | ArrayBuffer | Buffer[]

  export interface ClientOptions {
    headers?: Record<string, string>
    handshakeTimeout?: number
    maxPayload?: number
    perMessageDeflate?: boolean
    followRedirects?: boolean
    autoPong?: boolean
    agent?: Agent
    createConnection?: (...args: any[]) => Duplex
    [option: string]: unknown
  }

  export class WebSocket extends EventEmitter {
    static readonly CONNECTING: 0
    static readonly OPEN: 1
    static readonly CLOSING: 2
    static readonly CLOSED: 3
    constructor(address: string | URL, protocols?: string | string[], options?: ClientOptions)
    constructor(address: string | URL, options?: ClientOptions)
    readonly readyState: 0 | 1 | 2 | 3
    readonly bufferedAmount: number
    readonly protocol: string
    readonly isPaused: boolean
    send(data: Buffer | string, options?: { binary?: boolean }, callback?: (error?: Error) => void): void
    send(data: Buffer | string, callback?: (error?: Error) => void): void
    close(code?: number, reason?: string | Buffer): void
    terminate(): void
    ping(data?: Buffer | string, mask?: boolean, callback?: (error?: Error) => void): void
    pause(): void
    resume(): void
    on(event: 'open', listener: () => void): this
    on(event: 'message', listener: (data: RawData, isBinary: boolean) => void): this
    on(event: 'close', listener: (code: number, reason: Buffer) => void): this
    on(event: 'error', listener: (error: Error) => void): this
    on(event: 'ping' | 'pong', listener: (data: Buffer) => void): this
    on(event: 'unexpected-response', listener: (request: ClientRequest, response: IncomingMessage) => void): this
    on(event: string | symbol, listener: (...args: any[]) => void): this
    once(event: 'open', listener: () => void): this
    once(event: 'close', listener: (code: number, reason: Buffer) => void): this
    once(event: 'error', listener: (error: Error) => void): this
    once(event: 'unexpected-response', listener: (request: ClientRequest, response: IncomingMessage) => void): this
    once(event: string | symbol, listener: (...args: any[]) => void): this
  }

  export interface ServerOptions {
    noServer?: boolean
    clientTracking?: boolean
    maxPayload?: number
    perMessageDeflate?: boolean
    autoPong?: boolean
    handleProtocols?: (protocols: Set<string>, request: IncomingMessage) => string | false
    port?: number
    host?: string
  }

  export class WebSocketServer extends EventEmitter {
    constructor(options: ServerOptions, callback?: () => void)
    handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer, callback: (client: WebSocket, request: IncomingMessage) => void): void
    close(callback?: (error?: Error) => void): void
    on(event: 'headers', listener: (headers: string[], request: IncomingMessage) => void): this
    on(event: 'connection', listener: (socket: WebSocket, request: IncomingMessage) => void): this
    on(event: string | symbol, listener: (...args: any[]) => void): this
  }

  export type { IncomingHttpHeaders }
  export default WebSocket
}
