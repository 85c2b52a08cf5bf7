import db from '@adonisjs/lucid/services/db'

/** A request's logged bodies (LOG_BODIES), ready to read: null when none were kept. */
export interface LoggedBodies {
  request: string
  requestTruncated: boolean
  /** null: no answer body was kept (the client went away first) */
  response: string | null
  responseTruncated: boolean
}

/** The bodies kept for one request id, as the admin's and the user's request pages show them. */
export async function loggedBodies(requestId: string): Promise<LoggedBodies | null> {
  const row = await db.from('request_logs').where('request_id', requestId).first()
  if (!row) return null
  return {
    request: readable(row.request_body, row.request_truncated),
    requestTruncated: row.request_truncated,
    response: row.response_body === null ? null : readable(row.response_body, row.response_truncated),
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
