import { randomBytes } from 'node:crypto'

/**
 * The id of a response the gateway stores (translated answers): its own,
 * never derived from the upstream's (a chat upstream may reuse ids, a
 * mock always does), so two stored responses never share one. `resp_` and
 * 48 hex characters, as OpenAI's ids look.
 */
export function mintResponseId(): string {
  return `resp_${randomBytes(24).toString('hex')}`
}
