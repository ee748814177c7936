//! One memory cap per execution for the guest's linear memory and the host's buffers together.
//!
//! The store's `ResourceLimiter` bounds what the guest allocates, but the host allocates for the
//! guest too: response bodies of `http.call-many` with 64 calls in flight, the JSON of a
//! `data.select`, a rendered report. Without a shared budget one execution with a 64 MiB cap
//! held about 2 GB of host memory (64 bodies of 16 MiB, each buffered, parsed and re-serialised).
//!
//! A [`MemoryBudget`] counts both: the limiter charges the guest's memory growth, the
//! capabilities charge their buffers as they fill them ([`MemoryBudget::reserve`],
//! [`Reservation::grow`]), and each side is refused when guest + host would pass the cap. A
//! buffer handed to the guest stays charged until the guest's next host call
//! ([`MemoryBudget::hand_over`], [`MemoryBudget::settle`]): until then the guest may still be
//! copying it. When a host buffer is refused the budget records why and signals
//! [`MemoryBudget::exceeded`]; the runtime ends the execution as `memory_exceeded`, so the guest
//! never gets an error it could ignore.

use super::cancel::CancelToken;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

/// The memory of one execution: guest and host, against one cap. Cheap to clone (shared).
#[derive(Clone)]
pub struct MemoryBudget {
    inner: Arc<Inner>,
}

struct Inner {
    cap: usize,
    /// Guest + host, the only counter the cap is checked against (one atomic, so concurrent
    /// reservations and guest growth cannot both slip under the cap).
    used: AtomicUsize,
    host: AtomicUsize,
    /// Why a host buffer was refused (the first refusal).
    exceeded: OnceLock<String>,
    signal: CancelToken,
    /// Bytes of the buffers given to the guest by the last host call, still charged.
    handed: AtomicUsize,
}

impl fmt::Debug for MemoryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryBudget")
            .field("cap", &self.inner.cap)
            .field("guest", &self.guest())
            .field("host", &self.host())
            .finish()
    }
}

/// A host buffer was refused: the execution is over its memory cap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exceeded(pub String);

impl fmt::Display for Exceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Exceeded {}

fn mib(bytes: usize) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

impl MemoryBudget {
    pub fn new(cap: usize) -> MemoryBudget {
        MemoryBudget {
            inner: Arc::new(Inner {
                cap,
                used: AtomicUsize::new(0),
                host: AtomicUsize::new(0),
                exceeded: OnceLock::new(),
                signal: CancelToken::new(),
                handed: AtomicUsize::new(0),
            }),
        }
    }

    /// A budget that refuses nothing (capabilities used outside the runtime).
    pub fn unlimited() -> MemoryBudget {
        MemoryBudget::new(usize::MAX)
    }

    pub fn cap(&self) -> usize {
        self.inner.cap
    }

    /// Bytes of host buffers held now.
    pub fn host(&self) -> usize {
        self.inner.host.load(Ordering::Relaxed)
    }

    /// Bytes of guest memory.
    pub fn guest(&self) -> usize {
        self.used().saturating_sub(self.host())
    }

    fn used(&self) -> usize {
        self.inner.used.load(Ordering::Relaxed)
    }

    /// Adds `bytes` to the total if it stays within the cap.
    fn take(&self, bytes: usize) -> bool {
        let cap = self.inner.cap;
        self.inner
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|total| *total <= cap)
            })
            .is_ok()
    }

    /// The guest's memory grows by `bytes`: allowed when guest + host stays within the cap.
    pub(crate) fn grow_guest(&self, bytes: usize) -> bool {
        self.take(bytes)
    }

    /// A guest growth counted by [`MemoryBudget::grow_guest`] did not happen after all.
    pub(crate) fn ungrow_guest(&self, bytes: usize) {
        self.inner.used.fetch_sub(bytes, Ordering::AcqRel);
    }

    /// Charges `bytes` of host buffer for `what` (e.g. "`http.call-many` Api.get"). Over the cap
    /// the budget is exceeded (see [`MemoryBudget::exceeded`]) and every later reservation fails.
    pub fn reserve(&self, bytes: usize, what: &str) -> Result<Reservation, Exceeded> {
        let mut r = Reservation {
            budget: self.clone(),
            bytes: 0,
        };
        r.grow(bytes, what)?;
        Ok(r)
    }

    fn charge(&self, bytes: usize, what: &str) -> Result<(), Exceeded> {
        if let Some(why) = self.inner.exceeded.get() {
            return Err(Exceeded(why.clone()));
        }
        if self.take(bytes) {
            self.inner.host.fetch_add(bytes, Ordering::AcqRel);
            return Ok(());
        }
        let host = self.host();
        let why = format!(
            "host-side buffers for {what} exceeded the execution's memory cap of {} \
             (guest memory {}, host buffers {} and {} more asked)",
            mib(self.inner.cap),
            mib(self.used().saturating_sub(host)),
            mib(host),
            mib(bytes)
        );
        let why = self.inner.exceeded.get_or_init(|| why).clone();
        self.inner.signal.cancel();
        Err(Exceeded(why))
    }

    fn release(&self, bytes: usize) {
        self.inner.host.fetch_sub(bytes, Ordering::AcqRel);
        self.inner.used.fetch_sub(bytes, Ordering::AcqRel);
    }

    /// Why a host buffer was refused, once one was.
    pub fn exceeded(&self) -> Option<&str> {
        self.inner.exceeded.get().map(String::as_str)
    }

    /// Resolves when a host buffer has been refused.
    pub async fn exceeded_signal(&self) {
        self.inner.signal.cancelled().await
    }

    /// Keeps `r` charged until the guest's next host call: a buffer returned to the guest is
    /// still held by the host while the guest copies it in.
    pub fn hand_over(&self, mut r: Reservation) {
        let bytes = std::mem::take(&mut r.bytes);
        self.inner.handed.fetch_add(bytes, Ordering::AcqRel);
    }

    /// The guest made another call: the buffers of the last one are gone.
    pub fn settle(&self) {
        let bytes = self.inner.handed.swap(0, Ordering::AcqRel);
        if bytes > 0 {
            self.release(bytes);
        }
    }
}

/// Bytes of host buffer charged to a budget, released when dropped.
#[derive(Debug)]
pub struct Reservation {
    budget: MemoryBudget,
    bytes: usize,
}

impl Reservation {
    /// Charges `more` bytes on top.
    pub fn grow(&mut self, more: usize, what: &str) -> Result<(), Exceeded> {
        self.budget.charge(more, what)?;
        self.bytes += more;
        Ok(())
    }

    /// Makes the reservation `total` bytes, growing or shrinking it.
    pub fn resize(&mut self, total: usize, what: &str) -> Result<(), Exceeded> {
        if total > self.bytes {
            self.grow(total - self.bytes, what)
        } else {
            self.budget.release(self.bytes - total);
            self.bytes = total;
            Ok(())
        }
    }

    /// Takes over `other`'s bytes.
    pub fn absorb(&mut self, mut other: Reservation) {
        self.bytes += std::mem::take(&mut other.bytes);
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.budget.release(self.bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_and_host_share_the_cap() {
        let budget = MemoryBudget::new(100);
        assert!(budget.grow_guest(40));
        let mut r = budget.reserve(50, "a").unwrap();
        assert!(!budget.grow_guest(20), "40 + 50 + 20 > 100");
        assert!(
            budget.exceeded().is_none(),
            "a refused guest growth is the limiter's"
        );
        r.resize(10, "a").unwrap();
        assert!(budget.grow_guest(20));
        assert_eq!((budget.guest(), budget.host()), (60, 10));
        budget.hand_over(r);
        assert_eq!(budget.host(), 10, "handed over, still held");
        budget.settle();
        assert_eq!(budget.host(), 0);
        let err = budget.reserve(41, "`http.call` Api.big").unwrap_err();
        assert!(err
            .0
            .starts_with("host-side buffers for `http.call` Api.big exceeded"));
        assert_eq!(budget.exceeded(), Some(err.0.as_str()));
        // Once exceeded, nothing more is given out, however small.
        assert!(budget.reserve(1, "b").is_err());
        assert_eq!(budget.host(), 0);
    }
}
