"""RQ no-op throughput: enqueue N jobs with Queue.enqueue_many (pipelined), drain them with C
SimpleWorker processes in burst mode. SimpleWorker runs each job in the worker process itself;
RQ's default Worker forks a child per job, which would measure fork(), not the queue.
Time = earliest job started_at -> latest job ended_at, as RQ recorded them in Redis.
Usage: python rq_bench.py <redis-url> <N> <C>   (noop_tasks.py must be importable)"""
import multiprocessing
import sys
from importlib.metadata import version

from redis import Redis
from rq import Queue, SimpleWorker
from rq.job import Job

QUEUE = "peer-bench"


def work(url):
    conn = Redis.from_url(url)
    SimpleWorker([Queue(QUEUE, connection=conn)], connection=conn).work(
        burst=True, logging_level="WARNING")  # no per-job log lines (BullMQ logs none either)


def main():
    url, n, c = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    conn = Redis.from_url(url)
    conn.flushdb()  # only this peer's DB
    queue = Queue(QUEUE, connection=conn)
    ids = []
    for start in range(0, n, 1000):
        with conn.pipeline() as pipe:
            jobs = queue.enqueue_many(
                [Queue.prepare_data("noop_tasks.noop") for _ in range(start, min(n, start + 1000))],
                pipeline=pipe)
            pipe.execute()
        ids += [job.id for job in jobs]

    procs = [multiprocessing.Process(target=work, args=(url,)) for _ in range(c)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()

    jobs = [job for start in range(0, n, 1000)
            for job in Job.fetch_many(ids[start:start + 1000], connection=conn)]
    finished = sum(1 for job in jobs if job and job.get_status(refresh=False) == "finished")
    if finished != n:
        sys.exit(f"rq: only {finished} of {n} jobs finished")
    first = min(job.started_at for job in jobs)
    last = max(job.ended_at for job in jobs)
    seconds = (last - first).total_seconds()
    conn.flushdb()  # leave nothing behind
    print(f"peer=rq version={version('rq')} jobs={n} concurrency={c} "
          f"seconds={seconds:.3f} jobs_per_s={n / seconds:.1f}")


if __name__ == "__main__":
    main()
