import { baseUrl } from '#tests/helpers'

/**
 * A browser-like client for the HTML pages in functional tests: keeps
 * cookies, follows nothing by itself (redirects are asserted), and sends the
 * CSRF token of the last form it loaded with each POST.
 */
export class PageClient {
  cookies = new Map<string, string>()
  csrf: string | null = null

  constructor(readonly headers: Record<string, string> = {}) {}

  #store(response: Response) {
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attributes] = line.split(';')
      const eq = pair.indexOf('=')
      const name = pair.slice(0, eq).trim()
      const value = pair.slice(eq + 1).trim()
      const expired = attributes.some((a) => /max-age=0\b|expires=thu, 01 jan 1970/i.test(a.trim()))
      if (expired || value === '') this.cookies.delete(name)
      else this.cookies.set(name, value)
    }
  }

  #cookieHeader() {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ')
  }

  async get(path: string, headers: Record<string, string> = {}) {
    const response = await fetch(`${baseUrl()}${path}`, {
      redirect: 'manual',
      headers: { ...this.headers, cookie: this.#cookieHeader(), ...headers },
    })
    this.#store(response)
    const body = await response.text()
    this.#readCsrf(body)
    return { status: response.status, headers: response.headers, body, location: response.headers.get('location') }
  }

  /** The token of the page's csrfField() (its attributes in any order). */
  #readCsrf(body: string) {
    const input = /<input[^>]*name=["']_csrf["'][^>]*>/.exec(body)
    const token = input && /value=["']([^"']+)["']/.exec(input[0])
    if (token) this.csrf = token[1]
  }

  /** POSTs a urlencoded form with the CSRF token (unless `csrf: false`). */
  async post(path: string, fields: Record<string, string>, options: { csrf?: boolean } = {}) {
    const form = new URLSearchParams(fields)
    if (options.csrf !== false && this.csrf) form.set('_csrf', this.csrf)
    const response = await fetch(`${baseUrl()}${path}`, {
      method: 'POST',
      redirect: 'manual',
      headers: {
        ...this.headers,
        'content-type': 'application/x-www-form-urlencoded',
        'cookie': this.#cookieHeader(),
        'referer': `${baseUrl()}${path}`,
      },
      body: form.toString(),
    })
    this.#store(response)
    const body = await response.text()
    this.#readCsrf(body)
    return { status: response.status, headers: response.headers, body, location: response.headers.get('location') }
  }

  /** Signs in through the /login form. */
  async login(email: string, password = 'password123') {
    await this.get('/login')
    const result = await this.post('/login', { email, password })
    if (result.status !== 302) throw new Error(`login failed: ${result.status}`)
    return result
  }
}

/** Decodes the HTML entities Edge escapes ({{ }}) back to text. */
export function htmlText(html: string) {
  return html
    .replace(/<[^>]+>/g, '')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&#x([0-9a-f]+);/gi, (_, hex) => String.fromCodePoint(Number.parseInt(hex, 16)))
    .replace(/&#(\d+);/g, (_, dec) => String.fromCodePoint(Number(dec)))
    .replace(/&amp;/g, '&')
}
