//! A reader (and a small writer) for ip2region's `.xdb` v2 files: offline
//! IPv4 → region strings such as `中国|0|江苏省|南京市|0`.
//!
//! Layout (all integers little-endian), as written by lionsoul2014/ip2region's
//! maker:
//!
//! | offset | size | content |
//! |---|---|---|
//! | 0 | 256 | header: `version u16` (2), `index_policy u16`, `created_at u32` (Unix seconds), `start_index_ptr u32`, `end_index_ptr u32`, zero padding |
//! | 256 | 65,536 × 8 | vector index: for each first-two-octets bucket `b0·256 + b1`, `(start_ptr u32, end_ptr u32)` into the segment index (`end_ptr` one past the bucket's last entry; `(0, 0)` for an empty bucket) |
//! | … | … | region strings (UTF-8, `国家\|区域\|省份\|城市\|ISP`, deduplicated) |
//! | `start_index_ptr` | 14 × n | segment index, sorted: `start_ip u32`, `end_ip u32` (inclusive), `data_len u16`, `data_ptr u32`; `end_index_ptr` is the offset of the **last** entry |
//!
//! [`XdbSearcher::from_bytes`] checks the whole file once (header, every
//! vector entry, every segment's order and data pointer, UTF-8), so a
//! truncated or garbage file is an [`XdbError`]; lookups still read through
//! bounds-checked accessors and can never panic. The crate `ip2region` on
//! crates.io is not used: its binary search misses addresses (8.8.8.8 on the
//! 2024 data) and can underflow.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

/// Size of the fixed header.
pub const HEADER_LEN: usize = 256;
/// Number of vector-index buckets (one per first two octets).
pub const VECTOR_BUCKETS: usize = 256 * 256;
/// Size of one vector-index entry.
pub const VECTOR_ENTRY_LEN: usize = 8;
/// Size of one segment-index entry.
pub const SEGMENT_LEN: usize = 14;
/// The only structure version this reader understands (IPv4 xdb "v2").
pub const XDB_VERSION: u16 = 2;
/// Offset of the first byte after the vector index.
const VECTOR_END: usize = HEADER_LEN + VECTOR_BUCKETS * VECTOR_ENTRY_LEN;

/// Why an `.xdb` file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum XdbError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "not an ip2region xdb file: {len} bytes is shorter than the {VECTOR_END}-byte header and vector index"
    )]
    Truncated { len: usize },
    #[error(
        "unsupported xdb structure version {0} (this reader knows version {XDB_VERSION}, IPv4)"
    )]
    UnsupportedVersion(u16),
    #[error("bad segment index bounds {start}..={end} in a file of {len} bytes")]
    IndexBounds { start: u32, end: u32, len: usize },
    #[error("vector index bucket {bucket} points outside the segment index ({start}..{end})")]
    VectorEntry { bucket: usize, start: u32, end: u32 },
    #[error("segment {index}: {problem}")]
    Segment {
        index: usize,
        problem: SegmentProblem,
    },
}

/// What is wrong with one segment-index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentProblem {
    /// `start_ip > end_ip`.
    Reversed,
    /// Starts at or before the end of the previous segment.
    Unsorted,
    /// The region string lies outside the file.
    DataOutOfBounds,
    /// The region string is not UTF-8.
    NotUtf8,
}

impl fmt::Display for SegmentProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Reversed => "start address after end address",
            Self::Unsorted => "overlaps or precedes the previous segment",
            Self::DataOutOfBounds => "region string points outside the file",
            Self::NotUtf8 => "region string is not UTF-8",
        })
    }
}

/// One segment-index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Segment {
    start: u32,
    end: u32,
    data_len: u16,
    data_ptr: u32,
}

/// An `.xdb` file held in memory (11 MB for the real data: share one, e.g.
/// in an `Arc`), checked once, searched in well under a microsecond.
pub struct XdbSearcher {
    bytes: Vec<u8>,
    created_at: u32,
    /// Offset of the first segment-index entry.
    index_start: usize,
    /// Number of segment-index entries.
    segments: usize,
}

impl fmt::Debug for XdbSearcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XdbSearcher")
            .field("bytes", &self.bytes.len())
            .field("created_at", &self.created_at)
            .field("segments", &self.segments)
            .finish()
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes([s[0], s[1]]))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn segment_at(b: &[u8], at: usize) -> Option<Segment> {
    Some(Segment {
        start: u32_at(b, at)?,
        end: u32_at(b, at + 4)?,
        data_len: u16_at(b, at + 8)?,
        data_ptr: u32_at(b, at + 10)?,
    })
}

impl XdbSearcher {
    /// Reads and checks the file at `path`.
    pub fn open(path: &Path) -> Result<Self, XdbError> {
        let bytes = std::fs::read(path).map_err(|source| XdbError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(bytes)
    }

    /// Checks a whole file already in memory: header, vector index, and every
    /// segment (order, data pointer, UTF-8).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, XdbError> {
        let len = bytes.len();
        let truncated = || XdbError::Truncated { len };
        if len < VECTOR_END + SEGMENT_LEN {
            return Err(truncated());
        }
        let version = u16_at(&bytes, 0).ok_or_else(truncated)?;
        if version != XDB_VERSION {
            return Err(XdbError::UnsupportedVersion(version));
        }
        let created_at = u32_at(&bytes, 4).ok_or_else(truncated)?;
        let start = u32_at(&bytes, 8).ok_or_else(truncated)?;
        let end = u32_at(&bytes, 12).ok_or_else(truncated)?;
        let (start_us, end_us) = (start as usize, end as usize);
        let bounds_ok = start_us >= VECTOR_END
            && start_us <= end_us
            && (end_us - start_us).is_multiple_of(SEGMENT_LEN)
            && end_us
                .checked_add(SEGMENT_LEN)
                .is_some_and(|after| after <= len);
        if !bounds_ok {
            return Err(XdbError::IndexBounds { start, end, len });
        }
        let searcher = Self {
            created_at,
            index_start: start_us,
            segments: (end_us - start_us) / SEGMENT_LEN + 1,
            bytes,
        };
        searcher.check_vector_index()?;
        searcher.check_segments()?;
        Ok(searcher)
    }

    fn check_vector_index(&self) -> Result<(), XdbError> {
        let index_end = self.index_start + self.segments * SEGMENT_LEN;
        for bucket in 0..VECTOR_BUCKETS {
            let at = HEADER_LEN + bucket * VECTOR_ENTRY_LEN;
            let (Some(s), Some(e)) = (u32_at(&self.bytes, at), u32_at(&self.bytes, at + 4)) else {
                return Err(XdbError::Truncated {
                    len: self.bytes.len(),
                });
            };
            if s == 0 && e == 0 {
                continue;
            }
            let (su, eu) = (s as usize, e as usize);
            let ok = su >= self.index_start
                && su <= eu
                && eu <= index_end
                && (su - self.index_start).is_multiple_of(SEGMENT_LEN)
                && (eu - self.index_start).is_multiple_of(SEGMENT_LEN);
            if !ok {
                return Err(XdbError::VectorEntry {
                    bucket,
                    start: s,
                    end: e,
                });
            }
        }
        Ok(())
    }

    fn check_segments(&self) -> Result<(), XdbError> {
        let mut previous_end: Option<u32> = None;
        for index in 0..self.segments {
            let fail = |problem| Err(XdbError::Segment { index, problem });
            let Some(seg) = self.segment(index) else {
                return fail(SegmentProblem::DataOutOfBounds);
            };
            if seg.start > seg.end {
                return fail(SegmentProblem::Reversed);
            }
            if previous_end.is_some_and(|p| seg.start <= p) {
                return fail(SegmentProblem::Unsorted);
            }
            previous_end = Some(seg.end);
            match self.data(seg) {
                None => return fail(SegmentProblem::DataOutOfBounds),
                Some(d) if std::str::from_utf8(d).is_err() => {
                    return fail(SegmentProblem::NotUtf8);
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    fn segment(&self, index: usize) -> Option<Segment> {
        if index >= self.segments {
            return None;
        }
        segment_at(&self.bytes, self.index_start + index * SEGMENT_LEN)
    }

    fn data(&self, seg: Segment) -> Option<&[u8]> {
        let at = seg.data_ptr as usize;
        self.bytes
            .get(at..at.checked_add(usize::from(seg.data_len))?)
    }

    /// The region string of `ip`, e.g. `中国|0|江苏省|南京市|0`, borrowed from
    /// the file; `None` when no segment covers it.
    pub fn lookup(&self, ip: Ipv4Addr) -> Option<&str> {
        let ip = u32::from(ip);
        let bucket = (ip >> 16) as usize;
        let at = HEADER_LEN + bucket * VECTOR_ENTRY_LEN;
        let (s, e) = (
            u32_at(&self.bytes, at)? as usize,
            u32_at(&self.bytes, at + 4)? as usize,
        );
        if s == 0 && e == 0 {
            return None;
        }
        let mut lo = s.checked_sub(self.index_start)? / SEGMENT_LEN;
        // `end_ptr` is one past the bucket's last entry in the maker's files;
        // like upstream readers, also look at the entry after it, so a file
        // written with an inclusive `end_ptr` is searched completely too.
        let mut hi = (e.checked_sub(self.index_start)? / SEGMENT_LEN + 1).min(self.segments);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let seg = self.segment(mid)?;
            if ip < seg.start {
                hi = mid;
            } else if ip > seg.end {
                lo = mid + 1;
            } else {
                return std::str::from_utf8(self.data(seg)?).ok();
            }
        }
        None
    }

    /// Like [`lookup`](Self::lookup) for any address; IPv6 is not covered
    /// by v2 files and gives `None` (IPv4-mapped `::ffff:a.b.c.d` is looked
    /// up as `a.b.c.d`).
    pub fn lookup_ip(&self, ip: IpAddr) -> Option<&str> {
        match ip {
            IpAddr::V4(v4) => self.lookup(v4),
            IpAddr::V6(v6) => v6.to_ipv4_mapped().and_then(|v4| self.lookup(v4)),
        }
    }

    /// When the file was built (Unix seconds, from the header).
    pub fn created_at(&self) -> u32 {
        self.created_at
    }

    /// Number of segments (address ranges).
    pub fn segment_count(&self) -> usize {
        self.segments
    }

    /// Size of the file in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Always false: a checked file holds at least one segment.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Every segment as `(first, last, region)`, in address order: for
    /// tools and tests.
    pub fn segments(&self) -> impl Iterator<Item = (Ipv4Addr, Ipv4Addr, &str)> + '_ {
        (0..self.segments).filter_map(|i| {
            let seg = self.segment(i)?;
            let region = std::str::from_utf8(self.data(seg)?).ok()?;
            Some((Ipv4Addr::from(seg.start), Ipv4Addr::from(seg.end), region))
        })
    }
}

/// Why [`XdbWriter`] refused its input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XdbWriteError {
    #[error("no segments")]
    Empty,
    #[error("segment {0}: start after end")]
    Reversed(usize),
    #[error("segment {0} overlaps or precedes the previous one")]
    Unsorted(usize),
    #[error("segment {0}: region string longer than 65,535 bytes")]
    RegionTooLong(usize),
    #[error("the file would exceed 4 GiB")]
    TooLarge,
}

/// Writes small `.xdb` v2 files in the maker's layout: segments split at
/// `/16` bucket boundaries, region strings deduplicated, `end_ptr` one past
/// each bucket's last entry. Used by the tests (which build their own data
/// rather than committing binary fixtures) and handy for custom data.
#[derive(Debug, Default, Clone)]
pub struct XdbWriter {
    segments: Vec<(u32, u32, String)>,
    created_at: u32,
}

impl XdbWriter {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the header's build time (Unix seconds).
    pub fn created_at(mut self, unix_seconds: u32) -> Self {
        self.created_at = unix_seconds;
        self
    }

    /// Adds the inclusive range `first..=last` with its region string;
    /// ranges must come in increasing, non-overlapping order.
    pub fn range(mut self, first: Ipv4Addr, last: Ipv4Addr, region: &str) -> Self {
        self.segments
            .push((u32::from(first), u32::from(last), region.to_owned()));
        self
    }

    /// The file's bytes.
    pub fn build(&self) -> Result<Vec<u8>, XdbWriteError> {
        if self.segments.is_empty() {
            return Err(XdbWriteError::Empty);
        }
        // Validate, then split at bucket boundaries.
        let mut split: Vec<(u32, u32, usize)> = Vec::new();
        let mut previous: Option<u32> = None;
        for (i, (start, end, region)) in self.segments.iter().enumerate() {
            if start > end {
                return Err(XdbWriteError::Reversed(i));
            }
            if previous.is_some_and(|p| *start <= p) {
                return Err(XdbWriteError::Unsorted(i));
            }
            if region.len() > usize::from(u16::MAX) {
                return Err(XdbWriteError::RegionTooLong(i));
            }
            previous = Some(*end);
            let mut s = *start;
            loop {
                let bucket_last = s | 0xFFFF;
                if *end <= bucket_last {
                    split.push((s, *end, i));
                    break;
                }
                split.push((s, bucket_last, i));
                s = bucket_last + 1;
            }
        }
        let mut out = vec![0u8; VECTOR_END];
        // Region strings, deduplicated.
        let mut placed: std::collections::HashMap<&str, u32> = std::collections::HashMap::new();
        let mut data_ptrs = Vec::with_capacity(self.segments.len());
        for (_, _, region) in &self.segments {
            let ptr = match placed.get(region.as_str()) {
                Some(p) => *p,
                None => {
                    let p = u32::try_from(out.len()).map_err(|_| XdbWriteError::TooLarge)?;
                    out.extend_from_slice(region.as_bytes());
                    placed.insert(region, p);
                    p
                }
            };
            data_ptrs.push(ptr);
        }
        let index_start = out.len();
        let mut buckets = vec![(0u32, 0u32); VECTOR_BUCKETS];
        for (k, (s, e, i)) in split.iter().enumerate() {
            let at = u32::try_from(index_start + k * SEGMENT_LEN)
                .map_err(|_| XdbWriteError::TooLarge)?;
            let b = &mut buckets[(*s >> 16) as usize];
            if b.0 == 0 {
                b.0 = at;
            }
            b.1 = at + SEGMENT_LEN as u32;
            out.extend_from_slice(&s.to_le_bytes());
            out.extend_from_slice(&e.to_le_bytes());
            let len = self.segments[*i].2.len() as u16;
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&data_ptrs[*i].to_le_bytes());
        }
        let index_last = out.len() - SEGMENT_LEN;
        if u32::try_from(out.len()).is_err() {
            return Err(XdbWriteError::TooLarge);
        }
        out[0..2].copy_from_slice(&XDB_VERSION.to_le_bytes());
        out[2..4].copy_from_slice(&1u16.to_le_bytes()); // vector index policy
        out[4..8].copy_from_slice(&self.created_at.to_le_bytes());
        out[8..12].copy_from_slice(&(index_start as u32).to_le_bytes());
        out[12..16].copy_from_slice(&(index_last as u32).to_le_bytes());
        for (bucket, (s, e)) in buckets.iter().enumerate() {
            let at = HEADER_LEN + bucket * VECTOR_ENTRY_LEN;
            out[at..at + 4].copy_from_slice(&s.to_le_bytes());
            out[at + 4..at + 8].copy_from_slice(&e.to_le_bytes());
        }
        Ok(out)
    }
}

#[cfg(test)]
#[path = "xdb_tests.rs"]
mod tests;
