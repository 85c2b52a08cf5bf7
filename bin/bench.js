/*
| `npm run bench`: the gateway's throughput and latency benchmark against the
| mock upstream (see bin/bench_main.ts and docs/benchmarks.md).
*/
await import('@poppinss/ts-exec')
await import('./bench_main.js')
