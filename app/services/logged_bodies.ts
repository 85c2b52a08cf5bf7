import db from '@adonisjs/lucid/services/db'

/** A request's logged bodies (LOG_BODIES), ready to read: null when none were kept. */
export interface LoggedBodies {
  request: string
  requestTruncated: boolean
  /** null: no answer body was kept (the client went away first) */
  response: string | null
  responseTruncated: boolean
}

/**
 * The bodies kept for one request id: as the admin's and the user's request
 * pages show them (whole JSON indented), or as they were sent (`asSent`, the
 * management API's answer).
 */
export async function loggedBodies(requestId: string, asSent = false): Promise<LoggedBodies | null> {
  const row = await db.from('request_logs').where('request_id', requestId).first()
  if (!row) return null
  const show = asSent ? (text: string) => text : readable
  return {
    request: show(row.request_body, row.request_truncated),
    requestTruncated: row.request_truncated,
    response: row.response_body === null ? null : show(row.response_body, row.response_truncated),
    responseTruncated: row.response_truncated,
  }
}

/** JSON indented when it is whole JSON; anything else (an event stream, a cut body) as it came. */
function readable(text: string, truncated: boolean) {
  if (truncated) return text
  try {
    return JSON.stringify(JSON.parse(text), null, 2)
  } catch {
    return text
  }
}
