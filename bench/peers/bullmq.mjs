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
// What the Redis server did over the run (the whole server's: other clients count too): CPU
// (user + system) and commands, those of scripts included, as `codeai bench throughput` reports.
const redisWork = async () => {
  const [cpu, stats] = [await queueConn.info('cpu'), await queueConn.info('commandstats')];
  const field = (name) => Number((cpu.match(new RegExp(`^${name}:([0-9.]+)`, 'm')) || [])[1] || 0);
  const commands = [...stats.matchAll(/^cmdstat_[^:]+:calls=(\d+)/gm)].reduce((s, m) => s + Number(m[1]), 0);
  return { cpu: field('used_cpu_user') + field('used_cpu_sys'), commands };
};
const before = await redisWork();
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
const after = await redisWork();
await worker.close();
await queue.close();
await queueConn.flushdb(); // leave nothing behind
await Promise.all([queueConn.quit(), workerConn.quit()]); // clients we built, we close

const seconds = Number(last - first) / 1e9;
console.log(`peer=bullmq version=${version} jobs=${n} concurrency=${c} ` +
  `seconds=${seconds.toFixed(3)} jobs_per_s=${(n / seconds).toFixed(1)} ` +
  `redis_cpu_us_per_job=${((after.cpu - before.cpu) * 1e6 / n).toFixed(1)} ` +
  `redis_commands_per_job=${((after.commands - before.commands) / n).toFixed(2)}`);
