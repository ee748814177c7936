// BullMQ no-op throughput: enqueue N jobs with Queue.addBulk, drain them with one Worker at
// concurrency C. Time = first processor call -> N-th 'completed' event (both in this process).
// Usage: node bullmq.mjs <redis-url> <N> <C>   (run from a folder where `bullmq` is installed)
import { Queue, Worker } from 'bullmq';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const [url, n, c] = [new URL(process.argv[2]), Number(process.argv[3]), Number(process.argv[4])];
const connection = {
  host: url.hostname, port: Number(url.port || 6379),
  db: Number(url.pathname.slice(1) || 0), maxRetriesPerRequest: null,
};
const pkg = createRequire(import.meta.url).resolve('bullmq/package.json');
const version = JSON.parse(readFileSync(pkg, 'utf8')).version;

const queue = new Queue('peer-bench', { connection });
await (await queue.client).flushdb(); // only this peer's DB
for (let i = 0; i < n; i += 1000) {
  const batch = [];
  for (let j = i; j < Math.min(n, i + 1000); j++) batch.push({ name: 'noop', data: { i: j } });
  await queue.addBulk(batch);
}

let first = null, last = null, done = 0;
const finished = new Promise((resolve) => {
  const worker = new Worker('peer-bench', async () => {
    first ??= process.hrtime.bigint();
  }, { connection, concurrency: c });
  worker.on('completed', () => {
    if (++done === n) { last = process.hrtime.bigint(); resolve(worker); }
  });
  worker.on('failed', (job, err) => { console.error('job failed', err); process.exit(1); });
});
const worker = await finished;
await worker.close();
await queue.close();

const seconds = Number(last - first) / 1e9;
console.log(`peer=bullmq version=${version} jobs=${n} concurrency=${c} ` +
  `seconds=${seconds.toFixed(3)} jobs_per_s=${(n / seconds).toFixed(1)}`);
