/*
| `npm run chaos`: faults, kills and a Postgres restart under mixed load, then
| a reconciliation of what clients saw with the database (see
| bin/chaos_main.ts and docs/reliability.md).
*/
await import('@poppinss/ts-exec')
await import('./chaos_main.js')
