//! Tests of the `.xdb` reader against files built by [`XdbWriter`], plus one
//! test on the real `data/ip2region.xdb` when it has been fetched.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use proptest::prelude::*;

use super::*;

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// A file with gaps, several segments in one bucket, a segment spanning
/// buckets, and the first and last addresses of the space.
fn sample() -> XdbSearcher {
    let bytes = XdbWriter::new()
        .created_at(1_709_087_558)
        .range(ip("0.0.0.0"), ip("0.0.0.255"), "0|0|0|0|0")
        .range(ip("1.0.0.0"), ip("1.0.0.9"), "中国|0|上海|上海市|电信")
        .range(ip("1.0.0.10"), ip("1.0.0.10"), "中国|0|江苏省|南京市|0")
        .range(ip("1.0.0.20"), ip("1.0.255.255"), "中国|0|上海|上海市|电信")
        .range(ip("1.1.0.0"), ip("1.3.0.5"), "中国|0|广东省|深圳市|阿里云")
        .range(ip("10.0.0.0"), ip("10.255.255.255"), "0|0|0|内网IP|内网IP")
        .range(
            ip("255.255.255.0"),
            ip("255.255.255.255"),
            "美国|0|0|0|Level3",
        )
        .build()
        .unwrap();
    XdbSearcher::from_bytes(bytes).unwrap()
}

#[test]
fn finds_the_first_and_last_address_of_each_segment_and_nothing_in_gaps() {
    let x = sample();
    let cases = [
        ("0.0.0.0", Some("0|0|0|0|0")),
        ("0.0.0.255", Some("0|0|0|0|0")),
        ("0.0.1.0", None),
        ("0.255.255.255", None),
        ("1.0.0.0", Some("中国|0|上海|上海市|电信")),
        ("1.0.0.9", Some("中国|0|上海|上海市|电信")),
        ("1.0.0.10", Some("中国|0|江苏省|南京市|0")),
        ("1.0.0.11", None),
        ("1.0.0.19", None),
        ("1.0.0.20", Some("中国|0|上海|上海市|电信")),
        ("1.0.255.255", Some("中国|0|上海|上海市|电信")),
        ("1.1.0.0", Some("中国|0|广东省|深圳市|阿里云")),
        ("1.2.128.7", Some("中国|0|广东省|深圳市|阿里云")),
        ("1.3.0.5", Some("中国|0|广东省|深圳市|阿里云")),
        ("1.3.0.6", None),
        ("9.255.255.255", None),
        ("10.0.0.1", Some("0|0|0|内网IP|内网IP")),
        ("10.255.255.255", Some("0|0|0|内网IP|内网IP")),
        ("11.0.0.0", None),
        ("255.255.254.255", None),
        ("255.255.255.0", Some("美国|0|0|0|Level3")),
        ("255.255.255.255", Some("美国|0|0|0|Level3")),
    ];
    for (addr, want) in cases {
        assert_eq!(x.lookup(ip(addr)), want, "{addr}");
    }
}

#[test]
fn reports_the_header_and_the_segments() {
    let x = sample();
    assert_eq!(x.created_at(), 1_709_087_558);
    // 1.1.0.0–1.3.0.5 is split into three buckets; 10/8 into 256.
    assert_eq!(x.segment_count(), 7 + 2 + 255);
    let all: Vec<_> = x.segments().collect();
    assert_eq!(all.len(), x.segment_count());
    assert_eq!(all[0], (ip("0.0.0.0"), ip("0.0.0.255"), "0|0|0|0|0"));
    assert!(!x.is_empty() && x.len() > VECTOR_END);
}

#[test]
fn ipv6_is_not_covered_but_ipv4_mapped_addresses_are() {
    let x = sample();
    assert_eq!(x.lookup_ip(IpAddr::V6(Ipv6Addr::LOCALHOST)), None);
    let mapped = ip("1.0.0.10").to_ipv6_mapped();
    assert_eq!(
        x.lookup_ip(IpAddr::V6(mapped)),
        Some("中国|0|江苏省|南京市|0")
    );
    assert_eq!(
        x.lookup_ip(IpAddr::V4(ip("1.0.0.10"))),
        Some("中国|0|江苏省|南京市|0")
    );
}

#[test]
fn a_file_with_inclusive_bucket_ends_is_searched_completely() {
    let mut bytes = XdbWriter::new()
        .range(ip("1.0.0.0"), ip("1.0.0.9"), "a")
        .range(ip("1.0.0.10"), ip("1.0.0.19"), "b")
        .range(ip("1.0.0.20"), ip("1.0.255.255"), "c")
        .build()
        .unwrap();
    let at = HEADER_LEN + 0x0100 * VECTOR_ENTRY_LEN + 4;
    let end = u32_at(&bytes, at).unwrap() - SEGMENT_LEN as u32;
    bytes[at..at + 4].copy_from_slice(&end.to_le_bytes());
    let x = XdbSearcher::from_bytes(bytes).unwrap();
    assert_eq!(x.lookup(ip("1.0.0.0")), Some("a"));
    assert_eq!(x.lookup(ip("1.0.0.15")), Some("b"));
    assert_eq!(x.lookup(ip("1.0.200.1")), Some("c"));
}

#[test]
fn the_writer_refuses_bad_input() {
    assert_eq!(XdbWriter::new().build(), Err(XdbWriteError::Empty));
    let reversed = XdbWriter::new().range(ip("1.0.0.9"), ip("1.0.0.0"), "a");
    assert_eq!(reversed.build(), Err(XdbWriteError::Reversed(0)));
    let overlapping = XdbWriter::new()
        .range(ip("1.0.0.0"), ip("1.0.0.9"), "a")
        .range(ip("1.0.0.9"), ip("1.0.0.20"), "b");
    assert_eq!(overlapping.build(), Err(XdbWriteError::Unsorted(1)));
}

fn valid_bytes() -> Vec<u8> {
    XdbWriter::new()
        .range(ip("1.0.0.0"), ip("1.0.0.9"), "中国|0|上海|上海市|电信")
        .range(ip("1.0.0.10"), ip("1.0.0.19"), "中国|0|江苏省|南京市|0")
        .build()
        .unwrap()
}

fn put_u32(bytes: &mut [u8], at: usize, v: u32) {
    bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn garbage_and_truncated_files_are_errors() {
    let err = |b: Vec<u8>| XdbSearcher::from_bytes(b).unwrap_err();
    assert!(matches!(err(vec![]), XdbError::Truncated { len: 0 }));
    assert!(matches!(err(vec![7; 300]), XdbError::Truncated { .. }));
    assert!(matches!(
        err(vec![0xAB; 600_000]),
        XdbError::UnsupportedVersion(0xABAB)
    ));

    let good = valid_bytes();
    let mut cut = good.clone();
    cut.pop();
    assert!(matches!(err(cut), XdbError::IndexBounds { .. }));
    let head_only = good[..VECTOR_END + 20].to_vec();
    assert!(matches!(err(head_only), XdbError::IndexBounds { .. }));

    let mut v3 = good.clone();
    v3[0] = 3;
    assert!(matches!(err(v3), XdbError::UnsupportedVersion(3)));

    let start = u32_at(&good, 8).unwrap() as usize;
    let mut misaligned = good.clone();
    put_u32(&mut misaligned, 12, (start + 5) as u32);
    assert!(matches!(err(misaligned), XdbError::IndexBounds { .. }));

    let mut vector = good.clone();
    put_u32(
        &mut vector,
        HEADER_LEN + 0x0100 * VECTOR_ENTRY_LEN + 4,
        u32::MAX,
    );
    assert!(matches!(
        err(vector),
        XdbError::VectorEntry { bucket: 0x0100, .. }
    ));

    let mut data = good.clone();
    put_u32(&mut data, start + 10, u32::MAX - 3);
    assert!(matches!(
        err(data),
        XdbError::Segment {
            index: 0,
            problem: SegmentProblem::DataOutOfBounds
        }
    ));

    let mut utf8 = good.clone();
    utf8[VECTOR_END] = 0xFF;
    assert!(matches!(
        err(utf8),
        XdbError::Segment {
            problem: SegmentProblem::NotUtf8,
            ..
        }
    ));

    let mut unsorted = good.clone();
    put_u32(&mut unsorted, start + SEGMENT_LEN, 0);
    let e = err(unsorted);
    assert!(
        matches!(
            e,
            XdbError::Segment {
                index: 1,
                problem: SegmentProblem::Unsorted
            }
        ),
        "{e}"
    );
    assert_eq!(
        e.to_string(),
        "segment 1: overlaps or precedes the previous segment"
    );
}

#[test]
fn a_missing_file_is_an_io_error_naming_the_path() {
    let e = XdbSearcher::open(std::path::Path::new("/nonexistent/ip2region.xdb")).unwrap_err();
    assert!(matches!(e, XdbError::Io { .. }));
    assert!(e.to_string().contains("/nonexistent/ip2region.xdb"), "{e}");
}

/// Sorted, non-overlapping ranges with gaps, some spanning buckets.
fn ranges() -> impl Strategy<Value = Vec<(u32, u32, usize)>> {
    prop::collection::vec((0u64..300_000, 0u64..200_000, 0usize..4), 1..40).prop_map(|steps| {
        let mut out = Vec::new();
        let mut next: u64 = 0;
        for (gap, len, region) in steps {
            let start = next + gap;
            let end = start + len;
            if end > u64::from(u32::MAX) {
                break;
            }
            out.push((start as u32, end as u32, region));
            next = end + 1;
        }
        if out.is_empty() {
            out.push((0, 0, 0));
        }
        out
    })
}

const REGIONS: [&str; 4] = ["a|0|0|0|0", "中国|0|上海|上海市|电信", "b", ""];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn lookup_agrees_with_a_linear_scan(segs in ranges(), probes in prop::collection::vec(any::<u32>(), 0..50)) {
        let mut w = XdbWriter::new();
        for (s, e, r) in &segs {
            w = w.range(Ipv4Addr::from(*s), Ipv4Addr::from(*e), REGIONS[*r]);
        }
        let x = XdbSearcher::from_bytes(w.build().unwrap()).unwrap();
        let linear = |a: u32| segs.iter().find(|(s, e, _)| *s <= a && a <= *e).map(|(_, _, r)| REGIONS[*r]);
        let edges = segs.iter().flat_map(|(s, e, _)| {
            [s.wrapping_sub(1), *s, *e, e.wrapping_add(1), (*s | 0xFFFF), (*s | 0xFFFF).wrapping_add(1)]
        });
        for a in probes.into_iter().chain(edges).chain([0, u32::MAX]) {
            prop_assert_eq!(x.lookup(Ipv4Addr::from(a)), linear(a), "{}", Ipv4Addr::from(a));
        }
    }

    #[test]
    fn random_bytes_are_an_error_not_a_panic(bytes in prop::collection::vec(any::<u8>(), 0..2_000)) {
        prop_assert!(XdbSearcher::from_bytes(bytes).is_err());
    }

    #[test]
    fn a_damaged_file_is_refused_or_searched_without_panicking(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        probes in prop::collection::vec(any::<u32>(), 0..50),
    ) {
        let mut bytes = valid_bytes();
        // Aim at the interesting parts: header, the used bucket, data, index.
        let hot: Vec<usize> = (0..16)
            .chain(HEADER_LEN + 0x0100 * 8..HEADER_LEN + 0x0100 * 8 + 8)
            .chain(VECTOR_END..bytes.len())
            .collect();
        for (at, value) in flips {
            bytes[*at.get(&hot)] = value;
        }
        if let Ok(x) = XdbSearcher::from_bytes(bytes) {
            for a in probes.into_iter().chain([0x0100_0000, 0x0100_0009, 0x0100_0013]) {
                let _ = x.lookup(Ipv4Addr::from(a));
            }
        }
    }
}

/// The real data file, when `kefu fetch-ip2region` has put it in `data/`.
fn real_file() -> Option<XdbSearcher> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/ip2region.xdb");
    if !path.exists() {
        println!(
            "{} is absent: the real-data test did not run (run `kefu fetch-ip2region`)",
            path.display()
        );
        return None;
    }
    Some(XdbSearcher::open(&path).unwrap())
}

/// The five lookups checked against upstream's reader (BUILD-NOTES §9).
pub(crate) const REAL_LOOKUPS: [(&str, &str); 5] = [
    ("114.114.114.114", "中国|0|江苏省|南京市|0"),
    ("120.24.78.129", "中国|0|广东省|深圳市|阿里云"),
    ("36.112.0.1", "中国|0|北京|北京市|电信"),
    ("10.0.0.1", "0|0|0|内网IP|内网IP"),
    ("8.8.8.8", "美国|0|0|0|Level3"),
];

#[test]
fn the_real_file_answers_the_known_lookups() {
    let Some(x) = real_file() else { return };
    assert_eq!(x.len(), 11_070_083);
    assert_eq!(x.segment_count(), 720_464);
    assert_eq!(x.created_at(), 1_709_087_558);
    for (addr, want) in REAL_LOOKUPS {
        assert_eq!(x.lookup(ip(addr)), Some(want), "{addr}");
    }
    assert!(x.lookup(ip("0.0.0.0")).is_some());
    assert!(x.lookup(ip("255.255.255.255")).is_some());
}

/// `cargo test --release --lib -- --ignored lookup_speed --nocapture`
#[test]
#[ignore = "timing; run in release"]
fn lookup_speed_on_the_real_file() {
    let Some(x) = real_file() else { return };
    let n: u32 = 1_000_000;
    let started = std::time::Instant::now();
    let mut found = 0usize;
    for i in 0..n {
        // Scattered over the whole space (a multiplicative hash), so the
        // caches do not flatter the number.
        let a = Ipv4Addr::from(i.wrapping_mul(2_654_435_761));
        found += usize::from(std::hint::black_box(x.lookup(a)).is_some());
    }
    let took = started.elapsed();
    println!(
        "{n} lookups in {took:?} ({:.0} ns each), {found} found",
        took.as_nanos() as f64 / f64::from(n)
    );
    assert_eq!(found, n as usize);
}
