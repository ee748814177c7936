//! One host process per SQLite file.
//!
//! The embedded default keeps the queue, the schedule and every record in one SQLite file, and
//! the host process that serves it is the only one that leases its tasks, fires its schedules,
//! wakes its workers when a run is requested and cancels its executions. A second `codeai host
//! run` (or `serve`, or `worker start`) on the same file would be a second scheduler and a second
//! pool that the first knows nothing of: a cancel sent to one would not reach a run of the
//! other. So such a process takes an exclusive lock on `<file>.lock` for as long as it runs,
//! and a second one is refused with the first one's pid. The lock is the kernel's (`flock`):
//! it goes with the process, also when the process is killed, so a crash leaves nothing to
//! clean up. Commands that only read or record (`codeai exec`, `migrate`, `tenant`, …) take
//! no lock and run beside the host. Many processes on one database is what PostgreSQL + Redis
//! are for.

use super::Database;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::PathBuf;

/// The lock, held until dropped.
#[derive(Debug)]
pub struct HostLock {
    _file: File,
    pub path: PathBuf,
}

/// Takes the host lock of `db` when it is a SQLite file (PostgreSQL and in-memory SQLite need
/// none); an error naming the process that holds it when another host runs on the file.
pub fn take(db: &Database) -> anyhow::Result<Option<HostLock>> {
    // An in-memory database is its process's alone (and its name is no file's: the lock
    // would be a stray file in the working directory).
    if db.sqlite_in_memory() {
        return Ok(None);
    }
    let Some(file) = db.sqlite_file() else {
        return Ok(None);
    };
    let mut path = file.as_os_str().to_owned();
    path.push(".lock");
    let path = PathBuf::from(path);
    let mut lock = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| anyhow::anyhow!("cannot open the host lock `{}`: {e}", path.display()))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = lock.read_to_string(&mut holder);
            let holder = match holder.trim() {
                "" => "another process".to_string(),
                pid => format!("process {pid}"),
            };
            anyhow::bail!(
                "another CodeAI host ({holder}) is running on the SQLite file `{}` (it holds \
                 `{}`): one host process serves a SQLite file. Stop it, or give this one its own \
                 file (DATABASE_URL=sqlite:other.db); for several processes on one database use \
                 PostgreSQL and Redis (the README's \"Scale-out: PostgreSQL + Redis\")",
                file.display(),
                path.display()
            );
        }
        Err(TryLockError::Error(e)) => {
            anyhow::bail!("cannot lock the host lock `{}`: {e}", path.display())
        }
    }
    // The holder's pid, for the message of the next one that tries.
    lock.set_len(0)?;
    lock.seek(SeekFrom::Start(0))?;
    write!(lock, "{}", std::process::id())?;
    lock.flush()?;
    Ok(Some(HostLock { _file: lock, path }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An in-memory database, in each way sqlx names one, has no file: no host lock and no lock
    /// file (which would land in the working directory); a file has its lock beside it.
    #[tokio::test]
    async fn only_a_sqlite_file_gets_a_lock_beside_it() {
        for url in [
            "sqlite::memory:",
            "sqlite://:memory:",
            "sqlite:codeai-lock-test?mode=memory",
        ] {
            let db = Database::connect(url).await.unwrap();
            assert!(db.sqlite_in_memory(), "{url}");
            assert!(take(&db).unwrap().is_none(), "{url}");
        }
        let dir = std::env::temp_dir().join(format!("codeai-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("jobs.db");
        let db = Database::connect(&format!("sqlite:{}", file.display()))
            .await
            .unwrap();
        assert!(!db.sqlite_in_memory());
        let lock = take(&db).unwrap().expect("a SQLite file's host lock");
        assert_eq!(lock.path, dir.join("jobs.db.lock"));
        drop(lock);
        db.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
