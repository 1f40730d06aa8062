//! The public log: appending, reading, truncating, purging.

use std::collections::VecDeque;
use std::future::Future;
use std::ops::RangeInclusive;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex, RwLock};

use crate::completion::{Completion, CompletionFuture};
use crate::error::{IoContext, Result, WalError};
use crate::format::{Decoded, RECORD_HEADER_LEN, decode_record};
use crate::options::WalOptions;
use crate::recovery::{RecoveryReport, recover};
use crate::segment::Segment;
use crate::shared::{Op, QueueState, Shared};
use crate::stats::{StatsCollector, WalStats};
use crate::writer::{self, Writer};

/// Bytes read at a time by [`Entries`].
const READ_CHUNK: u64 = 1 << 20;

/// One record read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its index.
    pub index: u64,
    /// The kind the appender gave it (1..=255).
    pub kind: u8,
    /// Its payload.
    pub payload: Vec<u8>,
}

/// A segmented, checksummed write-ahead log with group commit.
///
/// All methods take `&self`: share a `Wal` between threads (or in an `Arc`)
/// and append from all of them at once; one writer thread batches their
/// records into shared writes and fdatasyncs.
#[derive(Debug)]
pub struct Wal {
    shared: Arc<Shared>,
    writer: Arc<Mutex<Writer>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    report: RecoveryReport,
    dir: PathBuf,
    /// Held (flock) while the log is open.
    _lock: std::fs::File,
}

/// An append that is queued (its indexes are fixed) but maybe not yet
/// acknowledged. Wait for it with [`Pending::wait`] or `.await` it.
#[derive(Debug)]
pub struct Pending {
    indexes: RangeInclusive<u64>,
    completion: CompletionFuture,
    /// Lets a blocking wait do the writing itself if the writer is free.
    leader: Option<Leader>,
    /// Whether the records were alone in the queue when queued.
    alone: bool,
}

/// Access to the writer for flat combining.
#[derive(Debug, Clone)]
struct Leader {
    writer: Arc<Mutex<Writer>>,
    shared: Arc<Shared>,
}

impl Leader {
    /// Drains the queue on this thread if no one else holds the writer; the
    /// holder, if there is one, drains what was queued before it lets go.
    fn lead(&self) {
        loop {
            match self.writer.try_lock() {
                Some(mut w) => w.drain(),
                None => {
                    // The holder may be past its last look at the queue: make
                    // sure the background writer looks again.
                    self.shared.work.notify_one();
                    return;
                }
            }
            // Released: anything queued meanwhile whose appender found the
            // writer busy is ours to take, unless someone else takes it.
            if self.shared.queue.lock().items.is_empty() {
                return;
            }
        }
    }
}

impl Pending {
    /// The indexes the records got.
    pub fn indexes(&self) -> RangeInclusive<u64> {
        self.indexes.clone()
    }

    /// Blocks until the append is acknowledged under the sync policy (doing
    /// the write and fdatasync on this thread if no one else is at it).
    pub fn wait(mut self) -> Result<RangeInclusive<u64>> {
        if let Some(leader) = self.leader.take() {
            leader.lead();
        }
        self.completion.0.wait().map(|_| self.indexes.clone())
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        // Queued without waking the background writer and never waited for:
        // wake it, so the records do not wait for the next append.
        if let Some(leader) = self.leader.take() {
            leader.shared.work.notify_one();
        }
    }
}

impl Future for Pending {
    type Output = Result<RangeInclusive<u64>>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // A task must not write on its thread: hand the records to the
        // background writer.
        if let Some(leader) = self.leader.take() {
            leader.shared.work.notify_one();
        }
        let indexes = self.indexes.clone();
        Pin::new(&mut self.completion).poll(cx).map(|r| r.map(|_| indexes))
    }
}

impl Wal {
    /// Opens the log in `dir`, creating it if the directory holds none.
    ///
    /// A torn tail is cut off and reported in [`Wal::recovery_report`];
    /// corruption fails the open with [`WalError::Corrupt`] (file and byte
    /// offset) unless `opts.repair_corruption` is set.
    pub fn open(dir: impl AsRef<Path>, opts: WalOptions) -> Result<Wal> {
        opts.validate()?;
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).context(|| format!("creating {}", dir.display()))?;
        let lock = lock_dir(&dir)?;
        let recovered = recover(&dir, &opts)?;
        let last = recovered.segments.last().expect("a log always has a segment").last_index();
        let shared = Arc::new(Shared {
            opts,
            queue: Mutex::new(QueueState {
                items: VecDeque::new(),
                queued_bytes: 0,
                next_index: last + 1,
                space_waiters: Vec::new(),
                shutdown: false,
                poisoned: None,
            }),
            work: Condvar::new(),
            space: Condvar::new(),
            table: RwLock::new(recovered.segments),
            stats: StatsCollector::new(),
            last_index: AtomicU64::new(last),
            durable_index: AtomicU64::new(last),
        });
        let writer = Arc::new(Mutex::new(Writer::new(shared.clone(), dir.clone(), recovered.generation)?));
        let handle = {
            let (writer, shared) = (writer.clone(), shared.clone());
            std::thread::Builder::new()
                .name("strata-wal-writer".into())
                .spawn(move || writer::background(writer, shared))
                .map_err(|e| WalError::io("starting the log writer thread", e))?
        };
        Ok(Wal { shared, writer, thread: Mutex::new(Some(handle)), report: recovered.report, dir, _lock: lock })
    }

    /// What opening the log found and repaired.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.report
    }

    /// The directory of the log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The options the log was opened with.
    pub fn options(&self) -> &WalOptions {
        &self.shared.opts
    }

    fn check_record(&self, kind: u8, payload: &[u8]) -> Result<()> {
        if kind == 0 {
            return Err(WalError::ReservedKind);
        }
        let limit = self.shared.opts.max_record_bytes;
        if payload.len() > limit as usize {
            return Err(WalError::RecordTooLarge { size: payload.len(), limit });
        }
        Ok(())
    }

    fn append_op(&self, records: Vec<(u8, Vec<u8>)>) -> Result<Op> {
        for (kind, payload) in &records {
            self.check_record(*kind, payload)?;
        }
        Ok(Op::Append(records))
    }

    /// Appends one record and blocks until it is acknowledged under the sync
    /// policy; returns its index.
    pub fn append(&self, kind: u8, payload: impl Into<Vec<u8>>) -> Result<u64> {
        self.append_batch(vec![(kind, payload.into())]).map(|r| *r.end())
    }

    /// Appends records with consecutive indexes, acknowledged together.
    ///
    /// An appender that finds the queue otherwise empty writes and syncs on
    /// its own thread (no hand-off to add to its latency); when others are
    /// queued too, the background writer batches them all.
    pub fn append_batch(&self, records: Vec<(u8, Vec<u8>)>) -> Result<RangeInclusive<u64>> {
        let mut pending = self.enqueue(records, None)?;
        if !pending.alone {
            // Others are queued: the background writer (woken by the queue)
            // batches them all.
            pending.leader = None;
        }
        pending.wait()
    }

    /// Queues records (blocking only while the queue is full) and returns
    /// without waiting for them to be written: the caller learns their indexes
    /// at once and waits for the acknowledgement later, so it can queue while
    /// holding a lock of its own and wait outside it. Records alone in the
    /// queue are written by [`Pending::wait`] on the caller's thread (or by
    /// the background writer once the `Pending` is dropped unwaited).
    pub fn submit(&self, records: Vec<(u8, Vec<u8>)>) -> Result<Pending> {
        self.enqueue(records, None)
    }

    /// Queues records. `wake`: whether to wake the background writer; `None`
    /// wakes it unless the records are alone in the queue (their appender
    /// will then write them itself).
    fn enqueue(&self, records: Vec<(u8, Vec<u8>)>, wake: Option<bool>) -> Result<Pending> {
        let n = records.len() as u64;
        let leader = Some(Leader { writer: self.writer.clone(), shared: self.shared.clone() });
        if n == 0 {
            let next = self.last_index() + 1;
            let done = Completion::new();
            done.complete(Ok(next - 1));
            return Ok(Pending {
                indexes: next..=next - 1,
                completion: CompletionFuture(done),
                leader: None,
                alone: false,
            });
        }
        let op = self.append_op(records)?;
        let (first, completion, alone) = self.shared.push_blocking(op, wake)?;
        Ok(Pending { indexes: first..=first + n - 1, completion: CompletionFuture(completion), leader, alone })
    }

    /// Appends one record without blocking a thread; resolves to its index
    /// once it is acknowledged under the sync policy.
    pub fn append_async(&self, kind: u8, payload: Vec<u8>) -> impl Future<Output = Result<u64>> + Send + 'static {
        let f = self.append_batch_async(vec![(kind, payload)]);
        async move { f.await.map(|r| *r.end()) }
    }

    /// Appends records without blocking a thread: waits (as a task) for room in
    /// the queue, then for the acknowledgement.
    pub fn append_batch_async(&self, records: Vec<(u8, Vec<u8>)>) -> AppendFuture {
        let n = records.len() as u64;
        let state = match self.append_op(records) {
            Ok(_) if n == 0 => {
                AsyncState::Failed(Some(WalError::InvalidOptions("an async append needs at least one record".into())))
            }
            Ok(op) => AsyncState::Queueing(op, n),
            Err(e) => AsyncState::Failed(Some(e)),
        };
        AppendFuture { shared: self.shared.clone(), state }
    }

    fn control(&self, op: Op) -> Result<u64> {
        let (_, completion, _) = self.shared.push_blocking(op, Some(false))?;
        Leader { writer: self.writer.clone(), shared: self.shared.clone() }.lead();
        completion.wait()
    }

    /// Blocks until everything appended so far is on disk (fdatasync).
    pub fn sync(&self) -> Result<()> {
        self.control(Op::Sync).map(|_| ())
    }

    /// Discards every record after `index` (a Raft log conflict); the next
    /// append gets `index + 1`. Records queued before this call are written
    /// first, then cut. Truncating below the first index held empties the log.
    pub fn truncate_after(&self, index: u64) -> Result<()> {
        self.control(Op::TruncateAfter(index)).map(|_| ())
    }

    /// Discards the whole log; the next append gets `next_index` (a Raft
    /// follower that installed a snapshot). Crash-safe: a new generation of
    /// segments replaces the old one.
    pub fn reset(&self, next_index: u64) -> Result<()> {
        if next_index == 0 {
            return Err(WalError::InvalidOptions("reset: the next index must be at least 1".into()));
        }
        self.control(Op::Reset(next_index)).map(|_| ())
    }

    /// Removes whole segments whose records all lie below `index` (autopurge
    /// after a snapshot); returns how many. The newest segment always stays,
    /// so [`Wal::first_index`] may remain below `index`.
    pub fn purge_below(&self, index: u64) -> Result<u64> {
        self.control(Op::PurgeBelow(index))
    }

    /// Index of the first record held (or of the next record, if empty).
    pub fn first_index(&self) -> u64 {
        self.shared.table.read()[0].first_index
    }

    /// Index of the last record written (`first_index() - 1` if empty).
    /// Under [`crate::SyncPolicy::Always`] it may be ahead of
    /// [`Wal::durable_index`] while an fdatasync runs.
    pub fn last_index(&self) -> u64 {
        self.shared.last_index.load(Ordering::Acquire)
    }

    /// Bytes of records and headers the log's segments hold (what purging
    /// would free; preallocated space past the records is not counted).
    pub fn retained_bytes(&self) -> u64 {
        self.shared.table.read().iter().map(|s| s.end).sum()
    }

    /// Index of the last record known to be on disk.
    pub fn durable_index(&self) -> u64 {
        self.shared.durable_index.load(Ordering::Acquire)
    }

    /// Reads the record at `index`, verifying its checksum; `None` if the log
    /// does not hold it.
    pub fn get(&self, index: u64) -> Result<Option<Entry>> {
        let table = self.shared.table.read();
        let Some(seg) = find_segment(&table, index) else {
            return Ok(None);
        };
        let k = (index - seg.first_index) as usize;
        let mut out = VecDeque::with_capacity(1);
        read_records(seg, k, k, self.shared.opts.max_record_bytes, &mut out)?;
        Ok(out.pop_front())
    }

    /// Iterates over the records from `from` onwards, verifying the checksum
    /// chain; the iteration ends at the last record written when it gets there.
    pub fn entries(&self, from: u64) -> Entries<'_> {
        Entries { wal: self, next: from, buffered: VecDeque::new(), error: None, failed: false }
    }

    /// Counters and histograms since open.
    pub fn stats(&self) -> WalStats {
        self.shared.stats.snapshot()
    }

    /// Stops taking appends, writes and syncs what is queued, and stops the
    /// writer thread. Dropping the log does the same.
    pub fn close(self) -> Result<()> {
        self.shutdown();
        match self.shared.queue.lock().poisoned.clone() {
            Some(p) => Err(WalError::Poisoned(p)),
            None => Ok(()),
        }
    }

    fn shutdown(&self) {
        {
            let mut q = self.shared.queue.lock();
            q.shutdown = true;
            for w in q.space_waiters.drain(..) {
                w.wake();
            }
        }
        self.shared.work.notify_all();
        self.shared.space.notify_all();
        if let Some(handle) = self.thread.lock().take() {
            let _ = handle.join();
        }
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Takes the directory's `LOCK` file, so that two processes never append to
/// one log.
fn lock_dir(dir: &Path) -> Result<std::fs::File> {
    let path = dir.join("LOCK");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .context(|| format!("opening {}", path.display()))?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(|e| {
        WalError::io(format!("locking {} (is another process using this log?)", path.display()), e.into())
    })?;
    Ok(file)
}

fn find_segment(table: &[Segment], index: u64) -> Option<&Segment> {
    let after = table.partition_point(|s| s.first_index <= index);
    let seg = table.get(after.checked_sub(1)?)?;
    seg.contains(index).then_some(seg)
}

/// Reads and verifies records `k..=last_k` of `seg` into `out`.
fn read_records(seg: &Segment, k: usize, last_k: usize, max_len: u32, out: &mut VecDeque<Entry>) -> Result<()> {
    let (start, _) = seg.record_range(k);
    let (_, end) = seg.record_range(last_k);
    let mut buf = vec![0u8; (end - start) as usize];
    seg.file.read_exact_at(&mut buf, start).context(|| format!("reading {} at offset {start}", seg.path.display()))?;
    let mut crc = seg.seed_for(k)?;
    let mut at = 0usize;
    for j in k..=last_k {
        let corrupt = |reason: String| WalError::Corrupt { path: seg.path.clone(), offset: start + at as u64, reason };
        match decode_record(&buf[at..], crc, max_len) {
            Ok(Decoded::Record(f)) => {
                out.push_back(Entry { index: seg.first_index + j as u64, kind: f.kind, payload: f.payload.to_vec() });
                crc = f.crc;
                at += RECORD_HEADER_LEN + f.payload.len();
            }
            Ok(Decoded::End) => return Err(corrupt("record reads as zeros".into())),
            Err(e) => return Err(corrupt(e.to_string())),
        }
    }
    Ok(())
}

/// Iterator over log records; see [`Wal::entries`]. Stops after the first
/// error.
#[derive(Debug)]
pub struct Entries<'a> {
    wal: &'a Wal,
    next: u64,
    buffered: VecDeque<Entry>,
    /// An error met while filling, yielded after the records read before it.
    error: Option<WalError>,
    failed: bool,
}

impl Entries<'_> {
    fn fill(&mut self) -> Result<()> {
        let table = self.wal.shared.table.read();
        let Some(seg) = find_segment(&table, self.next) else {
            return Ok(());
        };
        let k = (self.next - seg.first_index) as usize;
        let start = u64::from(seg.offsets[k]);
        // Read up to READ_CHUNK bytes of whole records, at least one record.
        let limit = start + READ_CHUNK;
        let last_k = (seg.offsets.partition_point(|&o| u64::from(o) < limit) - 1).max(k);
        read_records(seg, k, last_k, self.wal.shared.opts.max_record_bytes, &mut self.buffered)
    }
}

impl Iterator for Entries<'_> {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Result<Entry>> {
        if self.failed {
            return None;
        }
        if self.buffered.is_empty() && self.error.is_none() {
            self.error = self.fill().err();
        }
        let Some(entry) = self.buffered.pop_front() else {
            self.failed = self.error.is_some();
            return self.error.take().map(Err);
        };
        self.next = entry.index + 1;
        Some(Ok(entry))
    }
}

enum AsyncState {
    Queueing(Op, u64),
    Queued(Pending),
    Failed(Option<WalError>),
}

/// Future of [`Wal::append_batch_async`]: resolves to the records' indexes
/// once they are acknowledged.
pub struct AppendFuture {
    shared: Arc<Shared>,
    state: AsyncState,
}

impl std::fmt::Debug for AppendFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppendFuture").finish_non_exhaustive()
    }
}

impl Future for AppendFuture {
    type Output = Result<RangeInclusive<u64>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        loop {
            match &mut this.state {
                AsyncState::Failed(e) => return Poll::Ready(Err(e.take().unwrap_or(WalError::Closed))),
                AsyncState::Queued(pending) => return Pin::new(pending).poll(cx),
                AsyncState::Queueing(op, n) => {
                    let n = *n;
                    let mut q = this.shared.queue.lock();
                    if !this.shared.has_room(&q, op.queued_bytes()) && !q.shutdown && q.poisoned.is_none() {
                        this.shared.work.notify_one();
                        q.space_waiters.push(cx.waker().clone());
                        return Poll::Pending;
                    }
                    let op = std::mem::replace(op, Op::Sync);
                    this.state = match this.shared.push(&mut q, op, Some(true)) {
                        Ok((first, completion, _)) => AsyncState::Queued(Pending {
                            indexes: first..=first + n - 1,
                            completion: CompletionFuture(completion),
                            leader: None,
                            alone: false,
                        }),
                        Err(e) => AsyncState::Failed(Some(e)),
                    };
                }
            }
        }
    }
}
