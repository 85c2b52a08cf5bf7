/*
| `npm start`: runs the production HTTP server straight from the TypeScript
| sources (no build step needed on a fresh clone).
*/
process.env.NODE_ENV ||= 'production'
await import('@poppinss/ts-exec')
await import('./server.js')
