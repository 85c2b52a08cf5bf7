/*
| Test runner entrypoint (spawned by `node ace test`). Tests run against a
| real PostgreSQL: the embedded one, database `<name>_test`, unless
| DATABASE_URL is set.
*/
process.env.NODE_ENV = 'test'

import 'reflect-metadata'
import { prepareRuntime } from '../start/runtime.js'

await prepareRuntime({ database: true })

const { Ignitor, prettyPrintError } = await import('@adonisjs/core')
const { configure, processCLIArgs, run } = await import('@japa/runner')

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
  .testRunner()
  .configure(async (app) => {
    const { runnerHooks, ...config } = await import('../tests/bootstrap.js')

    processCLIArgs(process.argv.splice(2))
    configure({
      ...app.rcFile.tests,
      ...config,
      ...{
        setup: runnerHooks.setup,
        teardown: runnerHooks.teardown.concat([() => app.terminate()]),
      },
    })
  })
  .run(async (app) => {
    await run()
    // A spec that fails to import (a syntax error, a missing module) ends the run before the runner's
    // teardown: the app was never terminated, its pools and sockets kept the process alive, and
    // `npm test` (CI) waited forever instead of failing. Terminated here; and whatever still holds the
    // process is not waited for past 15 s (unref'd: a run that ends on its own is not held by it).
    if (!app.isTerminating && !app.isTerminated) await app.terminate()
    setTimeout(() => process.exit(), 15_000).unref()
  })
  .catch((error) => {
    process.exitCode = 1
    prettyPrintError(error)
    // A spec that fails to import (a syntax error, a missing module) rejects the run before the runner's
    // teardown: the app is terminated, but a handle the tests opened can keep the process alive, and
    // `npm test` (CI) would wait forever instead of failing. Unref'd: a run that ends on its own is not held.
    setTimeout(() => process.exit(1), 15_000).unref()
  })
