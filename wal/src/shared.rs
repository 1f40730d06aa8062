//! State shared by the appenders, the readers and the writer thread.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::task::Waker;

use parking_lot::{Condvar, Mutex, RwLock};

use crate::completion::Completion;
use crate::error::{Result, WalError};
use crate::format::RECORD_HEADER_LEN;
use crate::options::WalOptions;
use crate::segment::Segment;
use crate::stats::StatsCollector;

/// An operation for the writer thread.
#[derive(Debug)]
pub(crate) enum Op {
    /// Records (kind, payload) to append, in order.
    Append(Vec<(u8, Vec<u8>)>),
    /// fdatasync now.
    Sync,
    /// Discard every record after this index.
    TruncateAfter(u64),
    /// Discard everything; the next record gets this index.
    Reset(u64),
    /// Remove segments whose records all lie below this index.
    PurgeBelow(u64),
}

impl Op {
    /// Bytes the operation occupies in the queue, for back-pressure.
    pub(crate) fn queued_bytes(&self) -> usize {
        match self {
            Op::Append(records) => records.iter().map(|(_, p)| RECORD_HEADER_LEN + p.len()).sum(),
            _ => 0,
        }
    }
}

/// A queued operation with the index its first record gets.
#[derive(Debug)]
pub(crate) struct Item {
    pub op: Op,
    pub first_index: u64,
    pub completion: Arc<Completion>,
}

#[derive(Debug)]
pub(crate) struct QueueState {
    pub items: VecDeque<Item>,
    pub queued_bytes: usize,
    /// Index the next queued record gets.
    pub next_index: u64,
    /// Tasks waiting for room in the queue.
    pub space_waiters: Vec<Waker>,
    pub shutdown: bool,
    /// Set when a write failed in a way that leaves the files unknown.
    pub poisoned: Option<String>,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub opts: WalOptions,
    pub queue: Mutex<QueueState>,
    /// Signals the writer that work is queued.
    pub work: Condvar,
    /// Signals blocked appenders that the queue has room.
    pub space: Condvar,
    /// The segments, oldest first; the last one is being appended to.
    pub table: RwLock<Vec<Segment>>,
    pub stats: StatsCollector,
    /// Last index written (visible to readers).
    pub last_index: AtomicU64,
    /// Last index covered by an fdatasync.
    pub durable_index: AtomicU64,
}

impl Shared {
    pub(crate) fn has_room(&self, q: &QueueState, bytes: usize) -> bool {
        // An empty queue takes any one item, so a huge record still passes.
        q.queued_bytes == 0 || q.queued_bytes + bytes <= self.opts.max_queue_bytes
    }

    /// Queues `op`, assigning indexes; the caller has checked for room.
    /// `wake` says whether to wake the background writer to process it;
    /// `None`: unless it is alone in the queue (its appender will then try to
    /// process it itself). Returns the first index, the completion, and
    /// whether the op was alone.
    pub(crate) fn push(&self, q: &mut QueueState, op: Op, wake: Option<bool>) -> Result<(u64, Arc<Completion>, bool)> {
        if q.shutdown {
            return Err(WalError::Closed);
        }
        if let Some(p) = &q.poisoned {
            return Err(WalError::Poisoned(p.clone()));
        }
        let first = q.next_index;
        match &op {
            Op::Append(records) => q.next_index += records.len() as u64,
            Op::TruncateAfter(index) => {
                if *index >= q.next_index {
                    return Err(WalError::IndexOutOfRange {
                        index: *index,
                        first: self.table.read()[0].first_index,
                        last: q.next_index - 1,
                    });
                }
                q.next_index = index + 1;
            }
            Op::Reset(next) => q.next_index = *next,
            Op::Sync | Op::PurgeBelow(_) => {}
        }
        let bytes = op.queued_bytes();
        let completion = Completion::new();
        q.items.push_back(Item { op, first_index: first, completion: completion.clone() });
        q.queued_bytes += bytes;
        let alone = q.items.len() == 1;
        if wake.unwrap_or(!alone) {
            self.work.notify_one();
        }
        Ok((first, completion, alone))
    }

    /// Queues `op`, blocking while the queue is full.
    pub(crate) fn push_blocking(&self, op: Op, wake: Option<bool>) -> Result<(u64, Arc<Completion>, bool)> {
        let bytes = op.queued_bytes();
        let mut q = self.queue.lock();
        while !self.has_room(&q, bytes) && !q.shutdown && q.poisoned.is_none() {
            // What fills the queue may have been queued without waking the
            // background writer (its appender meant to write it later): a
            // full queue must be drained, so wake it.
            self.work.notify_one();
            self.space.wait(&mut q);
        }
        self.push(&mut q, op, wake)
    }
}
