// BullMQ delayed jobs due at one instant: add N no-op jobs with Queue.addBulk, each delayed to the
// same instant T (far enough ahead for the adds to finish first), drain them with one Worker at
// concurrency C, and report how late each job's processor started after T (p50/p99/max, ms) —
// the peer of `codeai bench fire`'s `started_*` figures.
// Usage: node bullmq_delayed.mjs <redis-url> <N> <C>   (from a folder with `bullmq` and `ioredis`)
import { Queue, Worker } from 'bullmq';
import IORedis from 'ioredis';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const [url, n, c] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
const connect = () => new IORedis(url, { maxRetriesPerRequest: null });
const pkg = createRequire(import.meta.url).resolve('bullmq/package.json');
const version = JSON.parse(readFileSync(pkg, 'utf8')).version;

const [queueConn, workerConn] = [connect(), connect()];
const queue = new Queue('peer-bench-delayed', { connection: queueConn });
await queueConn.flushdb(); // only this peer's DB

// The instant: 2 s plus 1 ms per job ahead, as `codeai bench fire` leaves itself.
const instant = Date.now() + 2000 + n;
for (let i = 0; i < n; i += 1000) {
  const batch = [];
  for (let j = i; j < Math.min(n, i + 1000); j++) {
    batch.push({ name: 'noop', data: { i: j }, opts: { delay: Math.max(0, instant - Date.now()) } });
  }
  await queue.addBulk(batch);
}
if (Date.now() >= instant) {
  console.error(`adding ${n} jobs took longer than the lead; try fewer jobs`);
  process.exit(1);
}

const started = [];
let done = 0;
const finished = new Promise((resolve) => {
  const worker = new Worker('peer-bench-delayed', async (job) => {
    // Due at the job's own timestamp plus its delay (the instant, within the ms of the add).
    started.push(Date.now() - (job.timestamp + job.opts.delay));
  }, { connection: workerConn, concurrency: c });
  worker.on('completed', () => {
    if (++done === n) resolve(worker);
  });
  worker.on('failed', (job, err) => { console.error('job failed', err); process.exit(1); });
});
const worker = await finished;
await worker.close();
await queue.close();
await queueConn.flushdb(); // leave nothing behind
await Promise.all([queueConn.quit(), workerConn.quit()]);

started.sort((a, b) => a - b);
const at = (p) => started[Math.min(started.length, Math.max(1, Math.ceil(started.length * p))) - 1];
console.log(`peer=bullmq-delayed version=${version} jobs=${n} concurrency=${c} ` +
  `started_p50_ms=${at(0.5)} started_p99_ms=${at(0.99)} started_max_ms=${at(1)}`);
