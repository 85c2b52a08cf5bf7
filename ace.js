/*
| JavaScript entrypoint for ace commands: registers the TypeScript loader
| (no type-checking at run time; `npm run typecheck` does that) and hands
| over to bin/console.ts.
*/
import '@poppinss/ts-exec'

await import('./bin/console.js')
