//! The writer: group commit.
//!
//! Appenders put items in a bounded queue. Whoever holds the one `Writer`
//! takes everything queued, encodes it into one buffer, writes it with one
//! `pwrite` and covers it with one fdatasync, then completes every append of
//! the batch at once. The holder is a blocking appender that finds the writer
//! free (flat combining: a lone appender does its own I/O, with no thread
//! hand-off on its latency), or else the background thread, which serves
//! async appenders and timed syncs and picks up whatever a busy holder left.
//! Control operations (sync, truncate, reset, purge) travel through the same
//! queue, so they take effect in the order they were asked for, and every file
//! mutation happens under the writer's lock.

use std::collections::VecDeque;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, mpsc};
use std::time::Instant;

use crate::completion::Completion;
use crate::error::{IoContext, Result, WalError};
use crate::format::{RECORD_HEADER_LEN, SEGMENT_HEADER_LEN, SegmentHeader, encode_record};
use crate::options::SyncPolicy;
use crate::prepare::SegmentPreparer;
use crate::segment::{Segment, create_segment, preallocate, remove_segment, zero_range};
use crate::shared::{Item, Op, Shared};

/// How a step of the writer failed.
enum Failure {
    /// Nothing of the failed step reached the files (preallocation or segment
    /// creation failed, e.g. a full disk): fail the waiting appends and go on.
    Clean(WalError),
    /// The files are in an unknown state (a write or an fdatasync failed):
    /// fail everything and take no more writes until reopened.
    Fatal(WalError),
}

/// The segment being appended to, as the writer sees it.
struct Active {
    path: PathBuf,
    file: Arc<File>,
    /// Write position: just past the last record written.
    pos: u64,
    /// File bytes reserved by preallocation.
    allocated: u64,
    /// Chained checksum of the last record written.
    last_crc: u32,
    /// Index the next record gets.
    next_index: u64,
    /// Whether the segment holds no record yet.
    empty: bool,
}

/// Records encoded but not yet written.
#[derive(Default)]
struct Run {
    buf: Vec<u8>,
    /// Offset of each record relative to the start of `buf`.
    offsets: Vec<u32>,
    crc: u32,
    records: u64,
    payload_bytes: u64,
    /// Completions of the appends in this run, with their last index.
    items: Vec<(Arc<Completion>, u64)>,
}

pub(crate) struct Writer {
    shared: Arc<Shared>,
    dir: PathBuf,
    generation: u64,
    active: Active,
    run: Run,
    /// Appends written but waiting for an fdatasync before acknowledgement.
    awaiting_sync: Vec<(Arc<Completion>, u64)>,
    unsynced_bytes: usize,
    oldest_unsynced: Option<Instant>,
    last_sync: Instant,
    /// Set after a fatal failure: no more file I/O until reopened.
    poisoned: bool,
    /// Hands large batches of acknowledgements to the notifier thread.
    notifier: mpsc::Sender<Vec<(Arc<Completion>, u64)>>,
    notifier_thread: Option<std::thread::JoinHandle<()>>,
    /// Zero-fills the next segment in the background.
    preparer: SegmentPreparer,
}

/// Batches up to this size are acknowledged by the writer itself: handing
/// them over would add a thread wake-up to a lone appender's latency.
const INLINE_ACKS: usize = 2;

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").field("next_index", &self.active.next_index).finish_non_exhaustive()
    }
}

impl Writer {
    pub(crate) fn new(shared: Arc<Shared>, dir: PathBuf, generation: u64) -> Result<Writer> {
        let active = {
            let table = shared.table.read();
            let seg = table.last().expect("a log always has a segment");
            Self::active_from(seg)?
        };
        let preparer = SegmentPreparer::start(&dir, shared.opts.preallocate_bytes)?;
        let (notifier, acks) = mpsc::channel::<Vec<(Arc<Completion>, u64)>>();
        let notifier_thread = std::thread::Builder::new()
            .name("strata-wal-notifier".into())
            .spawn(move || {
                for batch in acks {
                    for (c, last) in batch {
                        c.complete(Ok(last));
                    }
                }
            })
            .map_err(|e| WalError::io("starting the log notifier thread", e))?;
        Ok(Writer {
            shared,
            dir,
            generation,
            active,
            run: Run::default(),
            awaiting_sync: Vec::new(),
            unsynced_bytes: 0,
            oldest_unsynced: None,
            last_sync: Instant::now(),
            poisoned: false,
            notifier,
            notifier_thread: Some(notifier_thread),
            preparer,
        })
    }

    fn active_from(seg: &Segment) -> Result<Active> {
        let allocated = seg.file.metadata().context(|| format!("reading the size of {}", seg.path.display()))?.len();
        Ok(Active {
            path: seg.path.clone(),
            file: seg.file.clone(),
            pos: seg.end,
            allocated,
            last_crc: seg.last_crc,
            next_index: seg.last_index() + 1,
            empty: seg.offsets.is_empty(),
        })
    }

    /// Processes everything queued, until the queue is empty, syncing as the
    /// policy says. Whoever holds the writer runs this: the background
    /// thread, or a blocking appender that found the writer free.
    pub(crate) fn drain(&mut self) {
        loop {
            let items = self.take_items();
            if !items.is_empty() {
                if let Err(failed) = self.process(items) {
                    self.fail(failed);
                }
            }
            let queue_empty = self.shared.queue.lock().items.is_empty();
            if let Err(e) = self.sync_if_due(queue_empty) {
                self.fail((Failure::Fatal(e), VecDeque::new()));
            }
            if queue_empty {
                return;
            }
        }
    }

    /// Syncs what a timer-driven policy (`Interval`) owes.
    pub(crate) fn sync_if_interval_due(&mut self) {
        if let Err(e) = self.sync_if_due(false) {
            self.fail((Failure::Fatal(e), VecDeque::new()));
        }
    }

    /// Drains, syncs everything whatever the policy (a clean close), and
    /// stops the notifier.
    pub(crate) fn finish(&mut self) {
        self.drain();
        if let Err(e) = self.sync_now() {
            self.fail((Failure::Fatal(e), VecDeque::new()));
        }
        // Closing the channel ends the notifier once it has woken everyone.
        let (closed, _) = mpsc::channel();
        drop(std::mem::replace(&mut self.notifier, closed));
        if let Some(t) = self.notifier_thread.take() {
            let _ = t.join();
        }
    }

    /// Takes everything queued and lets waiting appenders in.
    fn take_items(&mut self) -> VecDeque<Item> {
        let mut q = self.shared.queue.lock();
        let items = std::mem::take(&mut q.items);
        q.queued_bytes = 0;
        if !items.is_empty() {
            let waiters = std::mem::take(&mut q.space_waiters);
            drop(q);
            self.shared.space.notify_all();
            for w in waiters {
                w.wake();
            }
        }
        items
    }

    /// When a timer-driven sync is next due.
    pub(crate) fn interval_deadline(&self) -> Option<Instant> {
        match self.shared.opts.sync_policy {
            SyncPolicy::Interval(d) if self.unsynced_bytes > 0 => Some(self.last_sync + d),
            _ => None,
        }
    }

    fn process(&mut self, mut items: VecDeque<Item>) -> std::result::Result<(), (Failure, VecDeque<Item>)> {
        if self.poisoned {
            return Err((Failure::Fatal(WalError::Poisoned("an earlier write failed".into())), items));
        }
        while let Some(item) = items.pop_front() {
            let step = match item.op {
                Op::Append(ref records) => self.encode(records, &item),
                _ => self.control(&item),
            };
            if let Err(f) = step {
                // A failed step never leaves its own item in the run.
                items.push_front(item);
                return Err((f, items));
            }
        }
        self.flush_run().map_err(|f| (f, VecDeque::new()))
    }

    /// Adds an append's records to the current run, starting a new segment
    /// first if they would overflow this one (an append never straddles two).
    fn encode(&mut self, records: &[(u8, Vec<u8>)], item: &Item) -> std::result::Result<(), Failure> {
        let frame_bytes: u64 = records.iter().map(|(_, p)| (RECORD_HEADER_LEN + p.len()) as u64).sum();
        let pending = self.active.pos + self.run.buf.len() as u64;
        let nonempty = !self.active.empty || !self.run.offsets.is_empty();
        if nonempty && pending + frame_bytes > self.shared.opts.segment_bytes {
            self.flush_run()?;
            self.roll()?;
        }
        debug_assert_eq!(
            item.first_index,
            self.active.next_index + self.run.records,
            "queue and writer disagree on indexes"
        );
        if self.run.offsets.is_empty() {
            self.run.crc = self.active.last_crc;
        }
        for (kind, payload) in records {
            let at = u32::try_from(self.run.buf.len()).expect("a run stays below 4 GiB");
            self.run.offsets.push(at);
            self.run.crc = encode_record(&mut self.run.buf, self.run.crc, *kind, payload);
            self.run.payload_bytes += payload.len() as u64;
        }
        self.run.records += records.len() as u64;
        let last = self.active.next_index + self.run.records - 1;
        self.run.items.push((item.completion.clone(), last));
        Ok(())
    }

    /// Writes the current run with one pwrite and publishes its records.
    fn flush_run(&mut self) -> std::result::Result<(), Failure> {
        if self.run.offsets.is_empty() {
            return Ok(());
        }
        let len = self.run.buf.len() as u64;
        let end = self.active.pos + len;
        if end > self.active.allocated {
            let step = self.shared.opts.preallocate_bytes;
            let target = end.div_ceil(step) * step;
            preallocate(&self.active.file, &self.active.path, self.active.allocated, target).map_err(Failure::Clean)?;
            self.active.allocated = target;
        }
        self.active
            .file
            .write_all_at(&self.run.buf, self.active.pos)
            .context(|| format!("writing {len} bytes to {} at offset {}", self.active.path.display(), self.active.pos))
            .map_err(Failure::Fatal)?;

        let base = self.active.pos;
        {
            let mut table = self.shared.table.write();
            let seg = table.last_mut().expect("a log always has a segment");
            seg.offsets.extend(self.run.offsets.iter().map(|&o| (base + u64::from(o)) as u32));
            seg.end = end;
            seg.last_crc = self.run.crc;
        }
        self.active.pos = end;
        self.active.last_crc = self.run.crc;
        self.active.next_index += self.run.records;
        self.active.empty = false;
        self.shared.last_index.store(self.active.next_index - 1, Ordering::Release);
        self.shared.stats.batch(self.run.records, self.run.payload_bytes, len);
        self.unsynced_bytes += len as usize;
        self.oldest_unsynced.get_or_insert_with(Instant::now);
        // Prepare the next segment once this one is half full: early enough
        // to be ready, late enough that short-lived logs never pay for it.
        if end > self.shared.opts.segment_bytes / 2 {
            self.preparer.request();
        }

        let items = std::mem::take(&mut self.run.items);
        if self.shared.opts.sync_policy.acknowledges_after_sync() {
            self.awaiting_sync.extend(items);
        } else {
            self.acknowledge(items);
        }
        self.run.buf.clear();
        self.run.offsets.clear();
        self.run.records = 0;
        self.run.payload_bytes = 0;
        Ok(())
    }

    fn sync_if_due(&mut self, queue_empty: bool) -> Result<()> {
        if self.unsynced_bytes == 0 || self.poisoned {
            return Ok(());
        }
        let due = match self.shared.opts.sync_policy {
            SyncPolicy::Always => true,
            SyncPolicy::Batch { max_delay, max_bytes } => {
                queue_empty
                    || self.unsynced_bytes >= max_bytes
                    || self.oldest_unsynced.is_some_and(|t| t.elapsed() >= max_delay)
            }
            SyncPolicy::Interval(d) => self.last_sync.elapsed() >= d,
            SyncPolicy::Never => false,
        };
        if due { self.sync_now() } else { Ok(()) }
    }

    /// fdatasyncs the active segment and acknowledges what waited for it.
    fn sync_now(&mut self) -> Result<()> {
        if self.poisoned {
            return Ok(());
        }
        if self.unsynced_bytes > 0 {
            let started = Instant::now();
            self.active.file.sync_data().context(|| format!("syncing {}", self.active.path.display()))?;
            self.shared.stats.fsync(started.elapsed());
            self.unsynced_bytes = 0;
            self.oldest_unsynced = None;
        }
        self.last_sync = Instant::now();
        self.shared.durable_index.store(self.active.next_index - 1, Ordering::Release);
        let items = std::mem::take(&mut self.awaiting_sync);
        self.acknowledge(items);
        Ok(())
    }

    /// Completes appends. Waking a blocked thread costs the waker a syscall
    /// and the wakee tens of microseconds on a virtual machine; for a large
    /// batch the notifier thread does it, so that the waking overlaps the
    /// next batch's write and fdatasync instead of delaying it.
    fn acknowledge(&mut self, items: Vec<(Arc<Completion>, u64)>) {
        if items.len() <= INLINE_ACKS {
            for (c, last) in items {
                c.complete(Ok(last));
            }
        } else if let Err(unsent) = self.notifier.send(items) {
            for (c, last) in unsent.0 {
                c.complete(Ok(last));
            }
        }
    }

    /// Finishes the active segment (synced, so that only the newest segment
    /// can ever have a torn tail) and starts the next.
    fn roll(&mut self) -> std::result::Result<(), Failure> {
        self.sync_now().map_err(Failure::Fatal)?;
        let header = SegmentHeader {
            first_index: self.active.next_index,
            generation: self.generation,
            prev_crc: self.active.last_crc,
        };
        self.start_segment(header, false).map_err(Failure::Clean)
    }

    /// Creates a segment and makes it the active one; with `replace_all`, the
    /// new segment replaces every other (a reset).
    fn start_segment(&mut self, header: SegmentHeader, replace_all: bool) -> Result<()> {
        let prepared = self.preparer.take();
        let (path, file) = create_segment(&self.dir, header, self.shared.opts.preallocate_bytes, prepared, false)?;
        self.shared.stats.other_bytes(SEGMENT_HEADER_LEN as u64);
        let segment = Segment {
            path,
            file: Arc::new(file),
            first_index: header.first_index,
            prev_crc: header.prev_crc,
            offsets: Vec::new(),
            end: SEGMENT_HEADER_LEN as u64,
            last_crc: header.prev_crc,
        };
        self.active = Self::active_from(&segment)?;
        let new_path = segment.path.clone();
        let replaced = {
            let mut table = self.shared.table.write();
            let old = if replace_all { std::mem::take(&mut *table) } else { Vec::new() };
            table.push(segment);
            old
        };
        for seg in replaced.iter().filter(|s| s.path != new_path) {
            remove_segment(&self.dir, &seg.path)?;
        }
        Ok(())
    }

    fn control(&mut self, item: &Item) -> std::result::Result<(), Failure> {
        self.flush_run()?;
        let result = match item.op {
            Op::Append(_) => unreachable!("appends are encoded, not controlled"),
            Op::Sync => self.sync_now().map(|()| self.active.next_index - 1),
            Op::TruncateAfter(index) => self.sync_now().and_then(|()| self.truncate_after(index)).map(|()| index),
            Op::Reset(next) => self.sync_now().and_then(|()| self.reset(next)).map(|()| next),
            Op::PurgeBelow(index) => self.purge_below(index),
        };
        match result {
            Ok(v) => {
                item.completion.complete(Ok(v));
                Ok(())
            }
            Err(e) => Err(Failure::Fatal(e)),
        }
    }

    /// Discards every record after `index`. Later segments go first, newest
    /// first, then the cut segment's tail is zeroed: a crash at any point
    /// leaves a prefix of the old log.
    fn truncate_after(&mut self, index: u64) -> Result<()> {
        let last = self.active.next_index - 1;
        let first = self.shared.table.read()[0].first_index;
        if index >= last {
            return Ok(());
        }
        if index + 1 < first {
            return self.reset(index + 1);
        }
        let (dropped, keep) = {
            let mut table = self.shared.table.write();
            let mut k = table.iter().position(|s| s.contains(index + 1)).expect("index + 1 is in the log");
            if table[k].first_index == index + 1 && k > 0 {
                k -= 1;
            }
            let dropped: Vec<Segment> = table.drain(k + 1..).collect();
            let seg = &mut table[k];
            let keep = (index + 1 - seg.first_index) as usize;
            let cut = seg.offsets.get(keep).map_or(seg.end, |&o| u64::from(o));
            let old_end = seg.end;
            let last_crc = if keep == 0 { seg.prev_crc } else { seg.seed_for(keep)? };
            seg.offsets.truncate(keep);
            seg.end = cut;
            seg.last_crc = last_crc;
            (dropped, (seg.path.clone(), seg.file.clone(), cut, old_end))
        };
        for seg in dropped.iter().rev() {
            remove_segment(&self.dir, &seg.path)?;
        }
        let (path, file, cut, old_end) = keep;
        let zeroed = zero_range(&file, &path, cut, old_end)?;
        file.sync_data().context(|| format!("syncing {}", path.display()))?;
        self.shared.stats.other_bytes(zeroed);
        let table = self.shared.table.read();
        self.active = Self::active_from(table.last().expect("non-empty"))?;
        drop(table);
        self.shared.last_index.store(index, Ordering::Release);
        self.shared.durable_index.store(index, Ordering::Release);
        Ok(())
    }

    /// Replaces the whole log with an empty one whose next index is `next`.
    fn reset(&mut self, next: u64) -> Result<()> {
        self.generation += 1;
        let header = SegmentHeader { first_index: next, generation: self.generation, prev_crc: 0 };
        self.start_segment(header, true)?;
        self.shared.last_index.store(next - 1, Ordering::Release);
        self.shared.durable_index.store(next - 1, Ordering::Release);
        Ok(())
    }

    /// Removes the segments whose records all lie below `index`, oldest
    /// first; the active segment always stays.
    fn purge_below(&mut self, index: u64) -> Result<u64> {
        let purged: Vec<Segment> = {
            let mut table = self.shared.table.write();
            let n = table.windows(2).take_while(|w| w[1].first_index <= index).count();
            table.drain(..n).collect()
        };
        for seg in &purged {
            remove_segment(&self.dir, &seg.path)?;
        }
        Ok(purged.len() as u64)
    }

    /// Fails the run, the items left in this batch and everything queued, and
    /// realigns the queue's index counter with what was written.
    fn fail(&mut self, failure: (Failure, VecDeque<Item>)) {
        let (failure, rest) = failure;
        let (err, fatal) = match failure {
            Failure::Clean(e) => (e, false),
            Failure::Fatal(e) => (e, true),
        };
        tracing::error!(error = %err, fatal, "write-ahead log write failed");
        let mut waiting: Vec<Arc<Completion>> = self.run.items.drain(..).map(|(c, _)| c).collect();
        if fatal {
            // After a failed write or fdatasync nothing unsynced can be trusted.
            waiting.extend(self.awaiting_sync.drain(..).map(|(c, _)| c));
            self.poisoned = true;
            self.unsynced_bytes = 0;
        }
        self.run.buf.clear();
        self.run.offsets.clear();
        self.run.records = 0;
        self.run.payload_bytes = 0;
        waiting.extend(rest.into_iter().map(|i| i.completion));
        {
            let mut q = self.shared.queue.lock();
            waiting.extend(q.items.drain(..).map(|i| i.completion));
            q.queued_bytes = 0;
            q.next_index = self.active.next_index;
            if fatal {
                q.poisoned = Some(err.to_string());
            }
        }
        self.shared.space.notify_all();
        for c in waiting {
            c.complete(Err(err.clone()));
        }
    }
}

/// The background thread: drains when woken by an async appender, syncs on
/// the interval timer, and finishes on close.
pub(crate) fn background(writer: Arc<parking_lot::Mutex<Writer>>, shared: Arc<Shared>) {
    loop {
        let deadline = writer.lock().interval_deadline();
        let shutdown = {
            let mut q = shared.queue.lock();
            if q.items.is_empty() && !q.shutdown {
                match deadline {
                    Some(d) => {
                        shared.work.wait_until(&mut q, d);
                    }
                    None => shared.work.wait(&mut q),
                }
            }
            q.shutdown
        };
        let mut w = writer.lock();
        if shutdown {
            w.finish();
            return;
        }
        w.drain();
        w.sync_if_interval_due();
    }
}
