/*
| Ace entrypoint. Commands that talk to the database get the same runtime
| bootstrap as the server: they connect to the embedded Postgres the server
| started (or start one for the duration of the command).
*/
import 'reflect-metadata'
import { prepareRuntime } from '../start/runtime.js'

/** Commands that only spawn another process (which bootstraps itself) or need no database. */
const NO_DATABASE = new Set(['test', 'serve', 'build', 'list', 'help', 'generate:key', 'repl'])
const commandName = process.argv[2] ?? 'list'
const needsDatabase = !NO_DATABASE.has(commandName) && !commandName.startsWith('make:')
await prepareRuntime({ database: needsDatabase })

const { Ignitor, prettyPrintError } = await import('@adonisjs/core')

const APP_ROOT = new URL('../', import.meta.url)
const IMPORTER = (filePath: string) => {
  if (filePath.startsWith('./') || filePath.startsWith('../')) {
    return import(new URL(filePath, APP_ROOT).href)
  }
  return import(filePath)
}

new Ignitor(APP_ROOT, { importer: IMPORTER })
  .tap((app) => {
    app.booting(async () => {
      await import('#start/env')
    })
    app.listen('SIGTERM', () => app.terminate())
    app.listenIf(app.managedByPm2, 'SIGINT', () => app.terminate())
  })
  .ace()
  .handle(process.argv.splice(2))
  .catch((error) => {
    process.exitCode = 1
    prettyPrintError(error)
  })
