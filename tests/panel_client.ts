import { baseUrl } from '#tests/helpers'

/**
 * A browser-like client for the server-rendered pages: keeps cookies,
 * reads the CSRF token from the last page, posts urlencoded forms, and does
 * not follow redirects (tests assert them).
 */
export class PanelClient {
  cookies = new Map<string, string>()
  csrf: string | null = null
  /** The last page fetched: sent as Referer, so "redirect back" returns to the form */
  lastPage = '/login'

  #cookieHeader() {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ')
  }

  #keepCookies(response: Response) {
    for (const line of response.headers.getSetCookie()) {
      const [pair] = line.split(';')
      const index = pair.indexOf('=')
      const name = pair.slice(0, index).trim()
      const value = pair.slice(index + 1)
      if (/max-age=0|expires=thu, 01 jan 1970/i.test(line) || value === '') this.cookies.delete(name)
      else this.cookies.set(name, value)
    }
  }

  async get(path: string) {
    const response = await fetch(`${baseUrl()}${path}`, {
      redirect: 'manual',
      headers: { cookie: this.#cookieHeader(), accept: 'text/html' },
    })
    this.#keepCookies(response)
    if (response.status === 200) this.lastPage = path
    const html = await response.text()
    const token = html.match(/name=['"]_csrf['"] value=['"]([^'"]+)['"]/)
    if (token) this.csrf = token[1]
    return { status: response.status, location: response.headers.get('location'), html, headers: response.headers }
  }

  /** Posts a form; the CSRF token of the last page is added unless `csrf: false`. */
  async post(path: string, form: Record<string, string | number | undefined | string[]> = {}, options: { csrf?: boolean } = {}) {
    const body = new URLSearchParams()
    for (const [k, v] of Object.entries(form)) {
      if (v === undefined) continue
      if (Array.isArray(v)) for (const item of v) body.append(k, item)
      else body.set(k, String(v))
    }
    if (options.csrf !== false) {
      if (!this.csrf) await this.get('/login')
      body.set('_csrf', this.csrf!)
    }
    const response = await fetch(`${baseUrl()}${path}`, {
      method: 'POST',
      redirect: 'manual',
      headers: {
        'cookie': this.#cookieHeader(),
        'content-type': 'application/x-www-form-urlencoded',
        'accept': 'text/html',
        'referer': `${baseUrl()}${this.lastPage}`,
      },
      body,
    })
    this.#keepCookies(response)
    const html = await response.text()
    return { status: response.status, location: response.headers.get('location'), html, headers: response.headers }
  }

  /** Follows one redirect with a GET (to read the flash message). */
  async follow(result: { location: string | null }) {
    if (!result.location) throw new Error('no redirect to follow')
    const url = new URL(result.location, baseUrl())
    return this.get(url.pathname + url.search)
  }

  /** Logs in through the form; returns the redirect response. */
  async login(email: string, password: string) {
    await this.get('/login')
    return this.post('/login', { email, password })
  }
}

/** Visible text of a page (tags stripped, whitespace collapsed), for assertions. */
export function textOf(html: string) {
  return html
    .replace(/<script[\s\S]*?<\/script>/g, ' ')
    .replace(/<[^>]+>/g, ' ')
    .replace(/&amp;/g, '&')
    .replace(/&#39;|&#x27;/g, "'")
    .replace(/&quot;/g, '"')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/\s+/g, ' ')
}
