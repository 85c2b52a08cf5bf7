/*
| `npm run bench:pages`: every GET page and reporting endpoint timed at 1M
| usage rows (see bin/bench_pages_main.ts and docs/benchmarks.md).
*/
await import('@poppinss/ts-exec')
await import('./bench_pages_main.js')
