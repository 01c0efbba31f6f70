//! The memory pool a run's operators reserve from: `engine.memory_limit`
//! in total, shared fairly among the operators that actually hold memory.
//!
//! DataFusion's `FairSpillPool` divides the limit by every operator that
//! *could* spill, whether or not it holds anything: a plan of three
//! aggregates over four partitions registers ~24 of them (partial
//! aggregates that pass rows through, the final count of a dozen rows), so
//! each got 1/24 of 2 GiB and the one aggregate that needed memory spilled
//! at ~75 MB. mqls at scale 200 spilled 220 MB in two aggregates and took
//! 3.75 s with the process at 1.1 GB; unspilled it took 2.7 s at 1.2 GB.
//!
//! This pool keeps the same guarantees (the total reserved never exceeds
//! the limit; an operator that cannot spill fails only when the limit is
//! reached; spilling operators that all need memory get equal parts) but
//! divides only among the spilling operators that hold memory at the time:
//! one alone may take everything free, two take half each, and registered
//! operators holding nothing take nothing from them. (Giving away what
//! operators holding little leave unused was considered and left: the
//! first operator to grow would keep the memory, and one coming later
//! would spill at a few megabytes every batch.)

use std::collections::HashMap;
use std::sync::Mutex;

use datafusion::common::{DataFusionError, Result};
use datafusion::execution::memory_pool::{
    MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation,
};

/// See the module documentation.
#[derive(Debug)]
pub struct SharedPool {
    limit: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Bytes held by operators that cannot spill.
    unspillable: usize,
    /// Bytes held by each spilling operator (by consumer id), only while
    /// it holds some.
    spillable: HashMap<usize, usize>,
    /// Their sum.
    spillable_total: usize,
}

impl SharedPool {
    pub fn new(limit: usize) -> Self {
        SharedPool {
            limit,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is a few counters, consistent after every update: a
        // thread that panicked holding the lock left nothing half-done.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    fn add(&mut self, consumer: &MemoryConsumer, bytes: usize) {
        if consumer.can_spill() {
            *self.spillable.entry(consumer.id()).or_default() += bytes;
            self.spillable_total += bytes;
        } else {
            self.unspillable += bytes;
        }
    }

    fn remove(&mut self, consumer: &MemoryConsumer, bytes: usize) {
        if consumer.can_spill() {
            if let Some(held) = self.spillable.get_mut(&consumer.id()) {
                let freed = bytes.min(*held);
                *held -= freed;
                self.spillable_total -= freed;
                if *held == 0 {
                    self.spillable.remove(&consumer.id());
                }
            }
        } else {
            self.unspillable = self.unspillable.saturating_sub(bytes);
        }
    }

    /// The most a spilling operator `id` may hold: an equal part of
    /// `available` among the spilling operators that hold memory, itself
    /// included.
    fn share(&self, id: usize, available: usize) -> usize {
        let holding = self.spillable.len() + usize::from(!self.spillable.contains_key(&id));
        available / holding
    }
}

impl MemoryPool for SharedPool {
    fn name(&self) -> &str {
        "canon shared"
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.state().add(reservation.consumer(), additional);
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.state().remove(reservation.consumer(), shrink);
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> Result<()> {
        let mut state = self.state();
        let consumer = reservation.consumer();
        let reserved = state.unspillable + state.spillable_total;
        let free = self.limit.saturating_sub(reserved);
        if additional > free {
            return Err(exhausted(consumer, additional, free));
        }
        if consumer.can_spill() {
            let held = state.spillable.get(&consumer.id()).copied().unwrap_or(0);
            let share = state.share(consumer.id(), self.limit.saturating_sub(state.unspillable));
            if held + additional > share {
                return Err(exhausted(consumer, additional, share.saturating_sub(held)));
            }
        }
        state.add(consumer, additional);
        Ok(())
    }

    fn reserved(&self) -> usize {
        let state = self.state();
        state.unspillable + state.spillable_total
    }

    fn memory_limit(&self) -> MemoryLimit {
        MemoryLimit::Finite(self.limit)
    }
}

impl std::fmt::Display for SharedPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}(limit={})", self.name(), self.limit)
    }
}

/// The error a refused reservation gives (a spilling operator spills on it).
fn exhausted(consumer: &MemoryConsumer, additional: usize, available: usize) -> DataFusionError {
    DataFusionError::ResourcesExhausted(format!(
        "Failed to allocate additional {additional} bytes for {} with {available} bytes \
         available within engine.memory_limit",
        consumer.name()
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::execution::memory_pool::MemoryPool;

    use super::*;

    const MB: usize = 1 << 20;

    fn pool(limit: usize) -> Arc<dyn MemoryPool> {
        Arc::new(SharedPool::new(limit))
    }

    #[test]
    fn idle_spilling_operators_leave_their_share_to_those_that_hold_memory() {
        let pool = pool(100 * MB);
        // Twenty registered spilling operators holding nothing, one holding 1 MB.
        let idle: Vec<MemoryReservation> = (0..20)
            .map(|i| {
                MemoryConsumer::new(format!("idle {i}"))
                    .with_can_spill(true)
                    .register(&pool)
            })
            .collect();
        let small = MemoryConsumer::new("small")
            .with_can_spill(true)
            .register(&pool);
        small.try_grow(MB).unwrap();
        let hungry = MemoryConsumer::new("hungry")
            .with_can_spill(true)
            .register(&pool);
        // Two hold memory: 100 MB / 2 = 50 MB each (FairSpillPool would
        // stop `hungry` at 100 MB / 22 = 4.5 MB).
        hungry.try_grow(50 * MB).unwrap();
        assert!(hungry.try_grow(1).is_err());
        // `small` lets go of everything: `hungry` alone may take the rest.
        small.free();
        hungry.try_grow(50 * MB).unwrap();
        assert!(hungry.try_grow(1).is_err());
        assert_eq!(pool.reserved(), 100 * MB);
        drop(idle);
    }

    #[test]
    fn two_hungry_operators_get_half_each() {
        let pool = pool(100 * MB);
        let a = MemoryConsumer::new("a")
            .with_can_spill(true)
            .register(&pool);
        let b = MemoryConsumer::new("b")
            .with_can_spill(true)
            .register(&pool);
        a.try_grow(10 * MB).unwrap();
        b.try_grow(10 * MB).unwrap();
        // Two sharing 100 MB: 50 MB each.
        a.try_grow(40 * MB).unwrap();
        assert!(a.try_grow(1).is_err(), "a holds its half");
        b.try_grow(40 * MB).unwrap();
        assert!(b.try_grow(1).is_err(), "b holds its half");
        // a spills part of its state: b's share is still half.
        a.shrink(30 * MB);
        assert!(b.try_grow(1).is_err());
        // a spills the rest: b alone may take everything.
        a.free();
        b.try_grow(50 * MB).unwrap();
        assert!(b.try_grow(1).is_err());
    }

    #[test]
    fn an_operator_that_cannot_spill_fails_only_at_the_limit() {
        let pool = pool(100 * MB);
        let spill = MemoryConsumer::new("sort")
            .with_can_spill(true)
            .register(&pool);
        let build = MemoryConsumer::new("hash join build").register(&pool);
        build.try_grow(30 * MB).unwrap();
        // 70 MB left for the spilling one alone.
        spill.try_grow(70 * MB).unwrap();
        assert!(spill.try_grow(1).is_err());
        let err = build.try_grow(MB).unwrap_err();
        assert!(
            matches!(err, DataFusionError::ResourcesExhausted(ref m) if m.contains("hash join build") && m.contains("0 bytes available")),
            "{err}"
        );
        spill.shrink(10 * MB);
        build.try_grow(10 * MB).unwrap();
        assert_eq!(pool.reserved(), 100 * MB);
    }

    #[test]
    fn a_split_reservation_counts_against_its_operator_until_freed() {
        let pool = pool(100 * MB);
        let a = MemoryConsumer::new("a")
            .with_can_spill(true)
            .register(&pool);
        a.try_grow(60 * MB).unwrap();
        let part = a.split(20 * MB);
        let b = MemoryConsumer::new("b")
            .with_can_spill(true)
            .register(&pool);
        // a's operator still holds 60 MB (40 + 20): b's max-min share of
        // 100 MB is 50 MB, and only 40 MB are free.
        assert!(b.try_grow(41 * MB).is_err());
        b.try_grow(40 * MB).unwrap();
        drop(part);
        assert_eq!(pool.reserved(), 80 * MB);
        a.free();
        assert_eq!(pool.reserved(), 40 * MB);
    }
}
