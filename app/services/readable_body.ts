/** A logged body for reading: JSON indented when it is whole JSON; anything else (an event stream, a cut body) as it came. */
export function readableBody(text: string, truncated: boolean) {
  if (truncated) return text
  try {
    return JSON.stringify(JSON.parse(text), null, 2)
  } catch {
    return text
  }
}
