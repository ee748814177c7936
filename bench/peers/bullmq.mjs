// BullMQ no-op throughput: enqueue N jobs with Queue.addBulk, drain them with one Worker at
// concurrency C. Time = first processor call -> N-th 'completed' event (both in this process).
// Usage: node bullmq.mjs <redis-url> <N> <C>   (run from a folder with `bullmq` and `ioredis` installed)
import { Queue, Worker } from 'bullmq';
import IORedis from 'ioredis'; // BullMQ 6 makes ioredis an optional peer: pass clients built here
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const [url, n, c] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
const connect = () => new IORedis(url, { maxRetriesPerRequest: null });
const pkg = createRequire(import.meta.url).resolve('bullmq/package.json');
const version = JSON.parse(readFileSync(pkg, 'utf8')).version;

const [queueConn, workerConn] = [connect(), connect()];
const queue = new Queue('peer-bench', { connection: queueConn });
await queueConn.flushdb(); // only this peer's DB
for (let i = 0; i < n; i += 1000) {
  const batch = [];
  for (let j = i; j < Math.min(n, i + 1000); j++) batch.push({ name: 'noop', data: { i: j } });
  await queue.addBulk(batch);
}

let first = null, last = null, done = 0;
const finished = new Promise((resolve) => {
  const worker = new Worker('peer-bench', async () => {
    first ??= process.hrtime.bigint();
  }, { connection: workerConn, concurrency: c });
  worker.on('completed', () => {
    if (++done === n) { last = process.hrtime.bigint(); resolve(worker); }
  });
  worker.on('failed', (job, err) => { console.error('job failed', err); process.exit(1); });
});
const worker = await finished;
await worker.close();
await queue.close();
await queueConn.flushdb(); // leave nothing behind
await Promise.all([queueConn.quit(), workerConn.quit()]); // clients we built, we close

const seconds = Number(last - first) / 1e9;
console.log(`peer=bullmq version=${version} jobs=${n} concurrency=${c} ` +
  `seconds=${seconds.toFixed(3)} jobs_per_s=${(n / seconds).toFixed(1)}`);
