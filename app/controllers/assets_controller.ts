import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import app from '@adonisjs/core/services/app'
import type { HttpContext } from '@adonisjs/core/http'

/**
 * CSS and JS of the pages, served by the app itself (no CDN, no build step):
 * the project's own files from resources/assets, and a short allowlist of
 * files from npm packages. Cached by the browser for an hour, revalidated by
 * ETag.
 */
const VENDOR: Record<string, string> = {
  'pico.min.css': '@picocss/pico/css/pico.min.css',
  'uplot.min.css': 'uplot/dist/uPlot.min.css',
  'uplot.min.js': 'uplot/dist/uPlot.iife.min.js',
}

/** Node's own lookup, so the files are found from the sources and from build/ alike. */
const resolveVendor = createRequire(import.meta.url).resolve

const OWN_FILE = /^[a-z0-9_-]+\.(css|js|svg|png|ico)$/

export default class AssetsController {
  /** One asset file by name, or 404. */
  async show({ params, response }: HttpContext) {
    const name = String(params.file)
    let path: string | null = null
    if (VENDOR[name]) path = resolveVendor(VENDOR[name])
    else if (OWN_FILE.test(name)) path = app.makePath('resources/assets', name)
    if (!path || !existsSync(path)) return response.notFound('Not found')
    response.header('cache-control', 'public, max-age=3600')
    return response.download(path, true)
  }
}
