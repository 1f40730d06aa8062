//! SSTables: writing one ([`TableWriter`]), and reading one ([`Table`]).
//!
//! ```text
//! table   = data block* | filter block | properties block | index block | footer
//! block   = contents | compression u8 (0 none, 1 zstd) | crc32c u32
//!           (the crc covers the stored contents and the compression byte)
//! index   = a block (see `block`) with, per data block, its last internal key
//!           and its handle: offset varint | stored length varint
//! filter  = the bloom filter of the table's user keys (see `bloom`)
//! props   = entries, deletions, key bytes, value bytes, data blocks,
//!           min seq, max seq (varints), smallest and largest internal keys
//!           (varint length + bytes)
//! footer  = 64 bytes: filter, props and index handles (offset u64, length
//!           u64 each), format version u32, crc32c of the 52 bytes before it
//!           u32, magic "STRATSST"
//! ```
//!
//! All integers little-endian. Every block's checksum is verified when it is
//! read; a table whose footer, index, filter or properties fail verification
//! does not open.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::coding::{get_len, get_varint, put_varint, read_u32, read_u64};
use crate::error::{IoContext, Result, StorageError};
use crate::lsm::block::{Block, BlockBuilder, BlockIter, DATA_RESTART_INTERVAL, INDEX_RESTART_INTERVAL};
use crate::lsm::bloom;
use crate::lsm::cache::ReadCtx;
use crate::lsm::iter::{Dir, InternalIterator};
use crate::lsm::key::{self, Kind};

const FOOTER_LEN: usize = 64;
const MAGIC: &[u8; 8] = b"STRATSST";
const FORMAT_VERSION: u32 = 1;
const BLOCK_TRAILER: usize = 5;
const NO_COMPRESSION: u8 = 0;
const ZSTD: u8 = 1;

/// How tables are written.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TableOptions {
    pub block_bytes: usize,
    pub bloom_bits_per_key: u32,
    /// zstd level, if blocks are compressed.
    pub zstd_level: Option<i32>,
}

/// Where a block lies in a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Handle {
    pub offset: u64,
    pub len: u64,
}

impl Handle {
    fn encode(&self, out: &mut Vec<u8>) {
        put_varint(out, self.offset);
        put_varint(out, self.len);
    }

    fn decode(b: &[u8]) -> Option<Handle> {
        let mut at = 0;
        Some(Handle { offset: get_varint(b, &mut at)?, len: get_varint(b, &mut at)? })
    }
}

/// A table's summary, kept in its properties block and in the manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Props {
    pub entries: u64,
    pub deletions: u64,
    pub key_bytes: u64,
    pub value_bytes: u64,
    pub data_blocks: u64,
    pub min_seq: u64,
    pub max_seq: u64,
    pub smallest: Vec<u8>,
    pub largest: Vec<u8>,
}

impl Props {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for v in [
            self.entries,
            self.deletions,
            self.key_bytes,
            self.value_bytes,
            self.data_blocks,
            self.min_seq,
            self.max_seq,
        ] {
            put_varint(&mut out, v);
        }
        for k in [&self.smallest, &self.largest] {
            put_varint(&mut out, k.len() as u64);
            out.extend_from_slice(k);
        }
        out
    }

    fn decode(b: &[u8]) -> Option<Props> {
        let mut at = 0;
        let mut v = [0u64; 7];
        for x in &mut v {
            *x = get_varint(b, &mut at)?;
        }
        let mut keys = [Vec::new(), Vec::new()];
        for k in &mut keys {
            let n = get_len(b, &mut at)?;
            *k = b.get(at..at.checked_add(n)?)?.to_vec();
            at += n;
        }
        let [smallest, largest] = keys;
        if !key::is_valid(&smallest) || !key::is_valid(&largest) {
            return None;
        }
        Some(Props {
            entries: v[0],
            deletions: v[1],
            key_bytes: v[2],
            value_bytes: v[3],
            data_blocks: v[4],
            min_seq: v[5],
            max_seq: v[6],
            smallest,
            largest,
        })
    }
}

/// Writes one table, entries in increasing internal-key order.
pub(crate) struct TableWriter {
    path: PathBuf,
    file: File,
    opts: TableOptions,
    /// Bytes not yet handed to the file.
    out: Vec<u8>,
    /// Bytes handed to the file so far.
    flushed: u64,
    data: BlockBuilder,
    index: BlockBuilder,
    scratch: Vec<u8>,
    hashes: Vec<u64>,
    last_user: Option<Vec<u8>>,
    props: Props,
}

impl TableWriter {
    pub(crate) fn create(path: &Path, opts: TableOptions) -> Result<TableWriter> {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .context(|| format!("creating {}", path.display()))?;
        Ok(TableWriter {
            path: path.to_path_buf(),
            file,
            opts,
            out: Vec::with_capacity(1 << 20),
            flushed: 0,
            data: BlockBuilder::new(DATA_RESTART_INTERVAL),
            index: BlockBuilder::new(INDEX_RESTART_INTERVAL),
            scratch: Vec::new(),
            hashes: Vec::new(),
            last_user: None,
            props: Props { min_seq: u64::MAX, ..Props::default() },
        })
    }

    /// Adds an entry; internal keys must strictly increase.
    pub(crate) fn add(&mut self, ikey: &[u8], value: &[u8]) -> Result<()> {
        debug_assert!(self.props.entries == 0 || key::compare(&self.props.largest, ikey).is_lt(), "keys out of order");
        let user = key::user_key(ikey);
        if self.last_user.as_deref() != Some(user) {
            self.hashes.push(bloom::key_hash(user));
            self.last_user = Some(user.to_vec());
        }
        if self.props.entries == 0 {
            self.props.smallest = ikey.to_vec();
        }
        self.props.largest.clear();
        self.props.largest.extend_from_slice(ikey);
        self.props.entries += 1;
        self.props.key_bytes += user.len() as u64;
        self.props.value_bytes += value.len() as u64;
        let seq = key::seq(ikey);
        self.props.min_seq = self.props.min_seq.min(seq);
        self.props.max_seq = self.props.max_seq.max(seq);
        if key::kind_byte(ikey) == Kind::Delete as u8 {
            self.props.deletions += 1;
        }
        self.data.add(ikey, value);
        if self.data.estimated_size() >= self.opts.block_bytes {
            self.finish_data_block()?;
        }
        Ok(())
    }

    /// Bytes the table takes so far (for splitting compaction outputs).
    pub(crate) fn file_size(&self) -> u64 {
        self.flushed + self.out.len() as u64 + self.data.estimated_size() as u64
    }

    fn finish_data_block(&mut self) -> Result<()> {
        if self.data.is_empty() {
            return Ok(());
        }
        let last = self.data.last_key().to_vec();
        self.scratch.clear();
        self.data.finish_into(&mut self.scratch);
        let contents = std::mem::take(&mut self.scratch);
        let handle = self.write_block(&contents, self.opts.zstd_level)?;
        self.scratch = contents;
        let mut h = Vec::with_capacity(16);
        handle.encode(&mut h);
        self.index.add(&last, &h);
        self.props.data_blocks += 1;
        Ok(())
    }

    /// Appends a block with its trailer; compresses it if that saves an eighth.
    fn write_block(&mut self, contents: &[u8], zstd_level: Option<i32>) -> Result<Handle> {
        let compressed = match zstd_level {
            Some(level) => {
                zstd::bulk::compress(contents, level).ok().filter(|c| c.len() < contents.len() - contents.len() / 8)
            }
            None => None,
        };
        let (stored, kind) = match &compressed {
            Some(c) => (c.as_slice(), ZSTD),
            None => (contents, NO_COMPRESSION),
        };
        let handle = Handle { offset: self.flushed + self.out.len() as u64, len: stored.len() as u64 };
        self.out.extend_from_slice(stored);
        self.out.push(kind);
        let crc = crc32c::crc32c_append(crc32c::crc32c(stored), &[kind]);
        self.out.extend_from_slice(&crc.to_le_bytes());
        if self.out.len() >= 1 << 20 {
            self.flush_out()?;
        }
        Ok(handle)
    }

    fn flush_out(&mut self) -> Result<()> {
        self.file.write_all(&self.out).context(|| format!("writing {}", self.path.display()))?;
        self.flushed += self.out.len() as u64;
        self.out.clear();
        Ok(())
    }

    /// Writes the filter, properties, index and footer, and syncs the file.
    /// Returns the table's size and properties.
    pub(crate) fn finish(mut self) -> Result<(u64, Props)> {
        self.finish_data_block()?;
        let filter = bloom::build(&self.hashes, self.opts.bloom_bits_per_key);
        let filter_h = self.write_block(&filter, None)?;
        if self.props.entries == 0 {
            self.props.min_seq = 0;
        }
        let props_h = self.write_block(&self.props.encode(), None)?;
        let mut index = Vec::new();
        self.index.finish_into(&mut index);
        let index_h = self.write_block(&index, None)?;
        let mut footer = Vec::with_capacity(FOOTER_LEN);
        for h in [filter_h, props_h, index_h] {
            footer.extend_from_slice(&h.offset.to_le_bytes());
            footer.extend_from_slice(&h.len.to_le_bytes());
        }
        footer.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        let crc = crc32c::crc32c(&footer);
        footer.extend_from_slice(&crc.to_le_bytes());
        footer.extend_from_slice(MAGIC);
        self.out.extend_from_slice(&footer);
        self.flush_out()?;
        self.file.sync_all().context(|| format!("syncing {}", self.path.display()))?;
        Ok((self.flushed, self.props))
    }
}

/// An open table: its file, index, filter and properties.
#[derive(Debug)]
pub(crate) struct Table {
    pub id: u64,
    path: PathBuf,
    file: File,
    index: Arc<Block>,
    filter: Vec<u8>,
    /// Read by tests and the inspection tools.
    #[cfg_attr(not(test), allow(dead_code))]
    pub props: Props,
}

fn corrupt(path: &Path, what: impl std::fmt::Display) -> StorageError {
    StorageError::corruption(path, what.to_string())
}

impl Table {
    /// Opens and verifies a table's metadata blocks.
    pub(crate) fn open(path: &Path, id: u64) -> Result<Table> {
        let file = File::open(path).context(|| format!("opening {}", path.display()))?;
        let size = file.metadata().context(|| format!("reading the size of {}", path.display()))?.len();
        if size < FOOTER_LEN as u64 {
            return Err(corrupt(path, format!("file of {size} bytes is shorter than a footer")));
        }
        let mut footer = [0u8; FOOTER_LEN];
        file.read_exact_at(&mut footer, size - FOOTER_LEN as u64)
            .context(|| format!("reading the footer of {}", path.display()))?;
        if &footer[56..64] != MAGIC {
            return Err(corrupt(path, "bad magic in the footer"));
        }
        if crc32c::crc32c(&footer[..52]) != read_u32(&footer, 52).expect("fixed size") {
            return Err(corrupt(path, "footer checksum mismatch"));
        }
        let version = read_u32(&footer, 48).expect("fixed size");
        if version != FORMAT_VERSION {
            return Err(corrupt(path, format!("unsupported table format version {version}")));
        }
        let handle = |i: usize| Handle {
            offset: read_u64(&footer, 16 * i).expect("fixed size"),
            len: read_u64(&footer, 16 * i + 8).expect("fixed size"),
        };
        let (filter_h, props_h, index_h) = (handle(0), handle(1), handle(2));
        for h in [filter_h, props_h, index_h] {
            if h.offset.checked_add(h.len + BLOCK_TRAILER as u64).is_none_or(|end| end > size - FOOTER_LEN as u64) {
                return Err(corrupt(path, "footer points outside the file"));
            }
        }
        let filter = read_block_bytes(&file, path, filter_h)?;
        if !bloom::is_valid(&filter) {
            return Err(corrupt(path, "malformed bloom filter"));
        }
        let props = Props::decode(&read_block_bytes(&file, path, props_h)?)
            .ok_or_else(|| corrupt(path, "malformed properties block"))?;
        let index = Block::new(read_block_bytes(&file, path, index_h)?)
            .map_err(|e| corrupt(path, format!("index block: {e}")))?;
        Ok(Table { id, path: path.to_path_buf(), file, index: Arc::new(index), filter, props })
    }

    /// Reads a data block through the cache.
    fn data_block(&self, handle: Handle, ctx: &ReadCtx, fill_cache: bool) -> Result<Arc<Block>> {
        if let Some(b) = ctx.cache.get(&(self.id, handle.offset)) {
            ctx.counters.cache_hits.add(1);
            return Ok(b);
        }
        let bytes = read_block_bytes(&self.file, &self.path, handle)?;
        ctx.counters.blocks_read.add(1);
        ctx.counters.bytes_read.add(handle.len + BLOCK_TRAILER as u64);
        let block = Arc::new(
            Block::new(bytes).map_err(|e| corrupt(&self.path, format!("data block at {}: {e}", handle.offset)))?,
        );
        if fill_cache {
            ctx.cache.insert((self.id, handle.offset), block.clone());
        }
        Ok(block)
    }

    /// The newest version of `user` at or below the seek target's sequence:
    /// `Some((kind, value))` if this table has one.
    pub(crate) fn get(&self, user: &[u8], target: &[u8], hash: u64, ctx: &ReadCtx) -> Result<Option<(Kind, Vec<u8>)>> {
        ctx.counters.bloom_checks.add(1);
        if !bloom::may_contain(&self.filter, hash) {
            ctx.counters.bloom_useful.add(1);
            return Ok(None);
        }
        let mut index = BlockIter::new(self.index.clone());
        index.seek(target);
        if !index.valid() {
            return if index.corrupt() { Err(corrupt(&self.path, "malformed index block")) } else { Ok(None) };
        }
        let handle = Handle::decode(index.value()).ok_or_else(|| corrupt(&self.path, "malformed block handle"))?;
        let block = self.data_block(handle, ctx, true)?;
        ctx.counters.point_get_blocks.add(1);
        let mut it = BlockIter::new(block);
        it.seek(target);
        if it.corrupt() {
            return Err(corrupt(&self.path, format!("malformed data block at {}", handle.offset)));
        }
        if it.valid() && key::user_key(it.key()) == user {
            let kind =
                Kind::from_u8(key::kind_byte(it.key())).ok_or_else(|| corrupt(&self.path, "unknown entry kind"))?;
            return Ok(Some((kind, it.value().to_vec())));
        }
        Ok(None)
    }

    /// An iterator in `dir` from `target` (forward: first entry >= target;
    /// reverse: last entry <= target; `None`: from the first or last entry).
    pub(crate) fn iter(
        self: &Arc<Self>,
        ctx: Arc<ReadCtx>,
        dir: Dir,
        target: Option<&[u8]>,
        fill_cache: bool,
    ) -> TableIter {
        let mut it = TableIter {
            table: self.clone(),
            ctx,
            index: BlockIter::new(self.index.clone()),
            data: None,
            dir,
            fill_cache,
            error: None,
        };
        it.position(target);
        it
    }
}

/// Reads a block's stored bytes, verifies its checksum and decompresses it.
fn read_block_bytes(file: &File, path: &Path, h: Handle) -> Result<Vec<u8>> {
    let len = usize::try_from(h.len).map_err(|_| corrupt(path, "block length overflows"))?;
    let mut buf = vec![0u8; len + BLOCK_TRAILER];
    file.read_exact_at(&mut buf, h.offset)
        .context(|| format!("reading {} bytes of {} at offset {}", buf.len(), path.display(), h.offset))?;
    let kind = buf[len];
    let stored_crc = read_u32(&buf, len + 1).expect("trailer read");
    if crc32c::crc32c(&buf[..len + 1]) != stored_crc {
        return Err(corrupt(path, format!("block checksum mismatch at offset {}", h.offset)));
    }
    buf.truncate(len);
    match kind {
        NO_COMPRESSION => Ok(buf),
        ZSTD => zstd::stream::decode_all(&buf[..])
            .map_err(|e| corrupt(path, format!("block at offset {} does not decompress: {e}", h.offset))),
        k => Err(corrupt(path, format!("unknown compression {k} at offset {}", h.offset))),
    }
}

/// A two-level iterator: the index picks data blocks, a block cursor walks each.
pub(crate) struct TableIter {
    table: Arc<Table>,
    ctx: Arc<ReadCtx>,
    index: BlockIter,
    data: Option<BlockIter>,
    dir: Dir,
    fill_cache: bool,
    error: Option<StorageError>,
}

impl TableIter {
    fn fail(&mut self, e: StorageError) {
        self.error = Some(e);
        self.data = None;
    }

    /// Loads the data block the index cursor points at.
    fn load(&mut self) -> bool {
        self.data = None;
        if !self.index.valid() {
            if self.index.corrupt() {
                self.fail(corrupt(&self.table.path, "malformed index block"));
            }
            return false;
        }
        let Some(h) = Handle::decode(self.index.value()) else {
            self.fail(corrupt(&self.table.path, "malformed block handle"));
            return false;
        };
        match self.table.data_block(h, &self.ctx, self.fill_cache) {
            Ok(b) => {
                self.data = Some(BlockIter::new(b));
                true
            }
            Err(e) => {
                self.fail(e);
                false
            }
        }
    }

    fn position(&mut self, target: Option<&[u8]>) {
        match (self.dir, target) {
            (Dir::Forward, None) => {
                self.index.seek_to_first();
                if self.load() {
                    self.data.as_mut().expect("loaded").seek_to_first();
                }
            }
            (Dir::Forward, Some(t)) => {
                self.index.seek(t);
                if self.load() {
                    self.data.as_mut().expect("loaded").seek(t);
                }
            }
            (Dir::Reverse, None) => {
                self.index.seek_to_last();
                if self.load() {
                    self.data.as_mut().expect("loaded").seek_to_last();
                }
            }
            (Dir::Reverse, Some(t)) => {
                // The block whose last key is the first >= t holds the answer,
                // unless all its keys are > t: then it is the block before.
                self.index.seek(t);
                if !self.index.valid() && !self.index.corrupt() {
                    self.index.seek_to_last();
                }
                if self.load() {
                    self.data.as_mut().expect("loaded").seek_for_prev(t);
                }
            }
        }
        self.skip_exhausted();
    }

    /// Moves across block boundaries until positioned on an entry or done.
    fn skip_exhausted(&mut self) {
        loop {
            let Some(d) = &self.data else { return };
            if d.corrupt() {
                let e = corrupt(&self.table.path, "malformed data block");
                return self.fail(e);
            }
            if d.valid() {
                return;
            }
            match self.dir {
                Dir::Forward => {
                    self.index.next();
                    if self.load() {
                        self.data.as_mut().expect("loaded").seek_to_first();
                    }
                }
                Dir::Reverse => {
                    self.index.prev();
                    if self.load() {
                        self.data.as_mut().expect("loaded").seek_to_last();
                    }
                }
            }
        }
    }
}

impl InternalIterator for TableIter {
    fn valid(&self) -> bool {
        self.data.as_ref().is_some_and(|d| d.valid())
    }

    fn key(&self) -> &[u8] {
        self.data.as_ref().expect("valid").key()
    }

    fn value(&self) -> &[u8] {
        self.data.as_ref().expect("valid").value()
    }

    fn advance(&mut self) {
        let d = self.data.as_mut().expect("valid");
        match self.dir {
            Dir::Forward => d.next(),
            Dir::Reverse => d.prev(),
        }
        self.skip_exhausted();
    }

    fn status(&self) -> Result<()> {
        match &self.error {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lsm::cache::{ReadCounters, block_cache};

    fn ctx() -> Arc<ReadCtx> {
        Arc::new(ReadCtx { cache: block_cache(1 << 20), counters: ReadCounters::default() })
    }

    fn write(dir: &Path, n: u64, zstd: Option<i32>) -> (PathBuf, Vec<Vec<u8>>) {
        let path = dir.join("t.sst");
        let opts = TableOptions { block_bytes: 512, bloom_bits_per_key: 10, zstd_level: zstd };
        let mut w = TableWriter::create(&path, opts).unwrap();
        let mut keys = Vec::new();
        for i in 0..n {
            let k = key::encode(
                format!("k{:06}", i * 2).as_bytes(),
                100 - (i % 3),
                if i % 5 == 0 { Kind::Delete } else { Kind::Put },
            );
            w.add(&k, format!("value-{i}-{}", "x".repeat((i % 50) as usize)).as_bytes()).unwrap();
            keys.push(k);
        }
        w.finish().unwrap();
        (path, keys)
    }

    #[test]
    fn write_read_iterate() {
        for zstd in [None, Some(3)] {
            let dir = tempfile::tempdir().unwrap();
            let (path, keys) = write(dir.path(), 1000, zstd);
            let t = Arc::new(Table::open(&path, 1).unwrap());
            assert_eq!(t.props.entries, 1000);
            assert_eq!(t.props.deletions, 200);
            let ctx = ctx();
            for (i, k) in keys.iter().enumerate() {
                let user = key::user_key(k);
                let got = t.get(user, &key::seek_key(user, key::MAX_SEQ), bloom::key_hash(user), &ctx).unwrap();
                let (kind, value) = got.unwrap();
                assert_eq!(kind as u8, key::kind_byte(k));
                assert!(value.starts_with(format!("value-{i}-").as_bytes()));
                // Invisible at a lower sequence.
                let none = t.get(user, &key::seek_key(user, 1), bloom::key_hash(user), &ctx).unwrap();
                assert!(none.is_none());
            }
            let missing = b"k000001";
            assert!(
                t.get(missing, &key::seek_key(missing, key::MAX_SEQ), bloom::key_hash(missing), &ctx)
                    .unwrap()
                    .is_none()
            );
            let mut it = t.iter(ctx.clone(), Dir::Forward, None, false);
            let mut n = 0;
            while it.valid() {
                assert_eq!(it.key(), &keys[n][..]);
                it.advance();
                n += 1;
            }
            assert_eq!(n, 1000);
            let mut it = t.iter(ctx.clone(), Dir::Reverse, Some(&keys[500]), false);
            let mut n = 500usize;
            while it.valid() {
                assert_eq!(it.key(), &keys[n][..]);
                it.advance();
                n = n.wrapping_sub(1);
            }
            assert_eq!(n, usize::MAX);
            let it = t.iter(ctx.clone(), Dir::Forward, Some(&key::seek_key(b"k000101", key::MAX_SEQ)), false);
            assert_eq!(it.key(), &keys[51][..]);
        }
    }

    #[test]
    fn every_flipped_byte_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let (path, keys) = write(dir.path(), 200, None);
        let original = std::fs::read(&path).unwrap();
        for at in (0..original.len()).step_by(7) {
            let mut bytes = original.clone();
            bytes[at] ^= 0x10;
            std::fs::write(&path, &bytes).unwrap();
            let Ok(t) = Table::open(&path, 1) else { continue };
            let t = Arc::new(t);
            let ctx = ctx();
            // Every read either fails or returns exactly what was written.
            let mut it = t.iter(ctx.clone(), Dir::Forward, None, false);
            let mut n = 0;
            while it.valid() {
                assert_eq!(it.key(), &keys[n][..], "flip at {at}");
                it.advance();
                n += 1;
            }
            assert!(n == keys.len() || it.status().is_err(), "flip at {at} lost entries silently");
        }
    }
}
