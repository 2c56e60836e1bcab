//! A bound on concurrent scoring work (fold-ins and catalogue scans on the blocking pool).
//!
//! Each piece of scoring work holds a permit while it runs. A request that finds none free waits
//! at most `wait`, and only if fewer than `queue` other requests are already waiting; otherwise
//! it is refused at once with [`Error::Busy`] (503 with `Retry-After`). So the work in flight is
//! at most `permits` pieces and the queue at most `queue` requests, each for at most `wait`:
//! never an unbounded queue. The queue is [`QUEUE_PER_PERMIT`] × `permits` by default, so a burst
//! of a few dozen concurrent single-user requests (each scan is about a millisecond) queues
//! rather than failing, while a flood gets its 503 at once. The semaphore is fair (first come, first served), and a
//! batch takes one permit per chunk of users, one chunk at a time (see
//! `routes::recommendations`), so a large batch holds at most one permit at any moment and
//! single-user requests queue between its chunks instead of behind the whole batch.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::Error;

/// How long a refused client should wait before trying again.
pub const RETRY_AFTER_SECONDS: u32 = 1;
/// Requests that may wait, per permit.
pub const QUEUE_PER_PERMIT: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScoringLimits {
    /// Scoring work running at once.
    pub permits: usize,
    /// Longest wait for a permit; zero refuses at once when all are taken.
    pub wait: Duration,
    /// Most requests waiting for a permit at once.
    pub queue: usize,
}

impl ScoringLimits {
    /// Two per core: scans are CPU-bound, but a little overlap hides scheduling gaps.
    pub fn default_permits() -> usize {
        std::thread::available_parallelism().map_or(2, |n| n.get() * 2)
    }
}

/// The shared bound. Cloning shares it.
#[derive(Debug, Clone)]
pub struct ScoringLimiter {
    semaphore: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
    limits: ScoringLimits,
}

/// Held while one piece of scoring work runs.
#[derive(Debug)]
pub struct ScoringPermit(#[expect(dead_code, reason = "held for its Drop")] OwnedSemaphorePermit);

/// Counts a waiting request while it waits, also when its future is dropped.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl ScoringLimiter {
    pub fn new(limits: ScoringLimits) -> Self {
        Self {
            semaphore: Arc::new(Semaphore::new(limits.permits)),
            waiting: Arc::new(AtomicUsize::new(0)),
            limits,
        }
    }

    pub fn limits(&self) -> &ScoringLimits {
        &self.limits
    }

    /// A permit, at once if one is free, else after a bounded wait.
    ///
    /// # Errors
    /// [`Error::Busy`] when none became free in time or too many requests already wait.
    pub async fn acquire(&self) -> Result<ScoringPermit, Error> {
        if let Ok(permit) = self.semaphore.clone().try_acquire_owned() {
            return Ok(ScoringPermit(permit));
        }
        let busy = || Error::Busy {
            retry_after: RETRY_AFTER_SECONDS,
        };
        if self.limits.wait.is_zero() {
            return Err(busy());
        }
        let waiting = self.waiting.fetch_add(1, Ordering::AcqRel);
        let _waiting = Waiting(&self.waiting);
        if waiting >= self.limits.queue {
            return Err(busy());
        }
        match tokio::time::timeout(self.limits.wait, self.semaphore.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(ScoringPermit(permit)),
            // Timed out, or the semaphore was closed (it never is).
            Ok(Err(_)) | Err(_) => Err(busy()),
        }
    }

    /// Takes a permit if one is free, without waiting (for tests that fill the bound).
    pub fn try_acquire(&self) -> Option<ScoringPermit> {
        self.semaphore
            .clone()
            .try_acquire_owned()
            .ok()
            .map(ScoringPermit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(permits: usize, wait_ms: u64) -> ScoringLimiter {
        ScoringLimiter::new(ScoringLimits {
            permits,
            queue: 1,
            wait: Duration::from_millis(wait_ms),
        })
    }

    #[tokio::test]
    async fn past_the_permits_requests_are_refused_and_a_released_permit_is_reused() {
        let l = limiter(2, 0);
        let a = l.acquire().await.unwrap();
        let _b = l.acquire().await.unwrap();
        assert!(matches!(
            l.acquire().await,
            Err(Error::Busy { retry_after: 1 })
        ));
        drop(a);
        assert!(l.acquire().await.is_ok());
    }

    #[tokio::test]
    async fn a_waiting_request_gets_the_permit_released_while_it_waits() {
        let l = limiter(1, 60_000);
        let held = l.acquire().await.unwrap();
        let waiter = tokio::spawn({
            let l = l.clone();
            async move { l.acquire().await.map(drop) }
        });
        while l.waiting.load(Ordering::Acquire) == 0 {
            tokio::task::yield_now().await;
        }
        drop(held);
        assert!(waiter.await.unwrap().is_ok());
    }

    #[tokio::test]
    async fn no_more_requests_wait_than_the_queue_holds() {
        let l = limiter(1, 60_000);
        let _held = l.acquire().await.unwrap();
        let first = tokio::spawn({
            let l = l.clone();
            async move { l.acquire().await.map(drop) }
        });
        while l.waiting.load(Ordering::Acquire) == 0 {
            tokio::task::yield_now().await;
        }
        assert!(
            matches!(l.acquire().await, Err(Error::Busy { .. })),
            "a second waiter is refused at once"
        );
        first.abort();
        let _ = first.await;
        assert_eq!(
            l.waiting.load(Ordering::Acquire),
            0,
            "an abandoned wait is uncounted"
        );
    }
}
