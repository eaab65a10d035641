//! The region of a web visitor, from their IP address, for routing a first
//! contact to a city group.
//!
//! [`RegionResolver`] holds the ip2region database ([`XdbSearcher`]) loaded
//! once at start; when the file is absent it says so once in the log and
//! resolves nothing, and routing goes on without a region. [`Region`] splits
//! the region string `国家|区域|省份|城市|ISP`, and [`Region::routing_key`]
//! gives the place name to map to a city group (see [`normalise_place`]).
//! `docs/ip2region.md` tells where the file comes from and how to fetch it.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use super::xdb::XdbSearcher;

/// Where the database is looked for when nothing else is configured
/// (relative to the working directory). The intended setting is
/// `routing.ip2region_path`.
pub const DEFAULT_XDB_PATH: &str = "data/ip2region.xdb";

/// The value ip2region gives the place fields of private networks.
const LAN: &str = "内网IP";

/// One region string split into its five fields; ip2region's `0` (and an
/// empty field) is `None`. Fields are the raw strings of the database, e.g.
/// `province: Some("江苏省")`, `city: Some("南京市")`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region<'a> {
    /// The whole string, e.g. `中国|0|江苏省|南京市|0`.
    pub raw: &'a str,
    pub country: Option<&'a str>,
    pub area: Option<&'a str>,
    pub province: Option<&'a str>,
    pub city: Option<&'a str>,
    pub isp: Option<&'a str>,
}

impl<'a> Region<'a> {
    /// Splits `国家|区域|省份|城市|ISP`. Missing trailing fields are `None`;
    /// fields after the fifth are ignored (custom data may append some).
    pub fn parse(raw: &'a str) -> Self {
        let mut fields = raw.split('|').map(|f| {
            let f = f.trim();
            (!f.is_empty() && f != "0").then_some(f)
        });
        let mut next = || fields.next().flatten();
        Region {
            raw,
            country: next(),
            area: next(),
            province: next(),
            city: next(),
            isp: next(),
        }
    }

    /// True for private networks (ip2region's `内网IP`).
    pub fn is_private_network(&self) -> bool {
        self.city == Some(LAN) || self.isp == Some(LAN)
    }

    /// The place to map to a city group: the city when known, else the
    /// province, normalised by [`normalise_place`] (`上海市` → `上海`,
    /// `江苏省` → `江苏`); `None` for private networks and when neither is
    /// known (most foreign addresses: `美国|0|0|0|Level3`).
    pub fn routing_key(&self) -> Option<&'a str> {
        let known = |f: Option<&'a str>| f.filter(|v| *v != LAN);
        known(self.city)
            .or(known(self.province))
            .map(normalise_place)
    }

    /// The province alone, normalised (`江苏省` → `江苏`).
    pub fn province_key(&self) -> Option<&'a str> {
        self.province.filter(|v| *v != LAN).map(normalise_place)
    }
}

/// Administrative suffixes removed by [`normalise_place`], longest first.
const SUFFIXES: [&str; 11] = [
    "特别行政区",
    "维吾尔自治区",
    "壮族自治区",
    "回族自治区",
    "自治区",
    "自治州",
    "地区",
    "省",
    "市",
    "盟",
    "林区",
];

/// Peoples named in autonomous prefectures, cut with what follows them:
/// `阿坝藏族羌族自治州` → `阿坝`, `巴音郭楞蒙古自治州` → `巴音郭楞`.
const PEOPLES: [&str; 19] = [
    "藏族",
    "羌族",
    "朝鲜族",
    "布依族",
    "苗族",
    "侗族",
    "土家族",
    "彝族",
    "白族",
    "傣族",
    "哈尼族",
    "景颇族",
    "傈僳族",
    "回族",
    "壮族",
    "哈萨克",
    "蒙古",
    "柯尔克孜",
    "土族",
];

/// The short, everyday name of a province or city, so that the database's
/// mixed spellings meet: `上海市` and `上海` → `上海`, `江苏省` → `江苏`,
/// `广西壮族自治区` → `广西`, `香港特别行政区` → `香港`, `阿里地区` →
/// `阿里`, `兴安盟` → `兴安`, `阿坝藏族羌族自治州` → `阿坝`.
///
/// One administrative suffix is removed (see the list in the source) only
/// when at least two characters remain, so `沙市` stays `沙市`; counties
/// (`县`) keep their suffix because `嘉义县` and `嘉义市` are different
/// places. Names without a known suffix are returned unchanged. Always a
/// sub-slice of the input.
pub fn normalise_place(name: &str) -> &str {
    let name = name.trim();
    for suffix in SUFFIXES {
        let Some(stem) = name.strip_suffix(suffix) else {
            continue;
        };
        let stem = if suffix == "自治州" {
            PEOPLES
                .iter()
                .filter_map(|p| stem.find(p))
                .min()
                .map_or(stem, |at| &stem[..at])
        } else {
            stem
        };
        return if stem.chars().count() >= 2 {
            stem
        } else {
            name
        };
    }
    name
}

/// The IP → region lookup of a running Kefu: the database loaded once at
/// start, or nothing (then every address resolves to `None`).
#[derive(Debug)]
pub struct RegionResolver {
    path: PathBuf,
    searcher: Option<XdbSearcher>,
}

impl RegionResolver {
    /// Loads the database at `path` once. An absent file logs one warning
    /// naming the path and the command that fetches it; an unreadable or
    /// invalid file logs one error. Either way Kefu runs on and routes web
    /// visitors without a region.
    pub fn load(path: &Path) -> RegionResolver {
        let searcher = match XdbSearcher::open(path) {
            Ok(x) => {
                tracing::info!(
                    path = %path.display(),
                    segments = x.segment_count(),
                    built = x.created_at(),
                    "ip2region database loaded"
                );
                Some(x)
            }
            Err(super::xdb::XdbError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                tracing::warn!(
                    "ip2region.xdb not found at {}; web visitors are routed without a region; run `kefu fetch-ip2region`",
                    path.display()
                );
                None
            }
            Err(e) => {
                tracing::error!(
                    "ip2region.xdb at {} is unusable ({e}); web visitors are routed without a region; run `kefu fetch-ip2region` to replace it",
                    path.display()
                );
                None
            }
        };
        RegionResolver {
            path: path.to_path_buf(),
            searcher,
        }
    }

    /// A resolver over a database already in memory (tests, tools).
    pub fn from_searcher(searcher: XdbSearcher) -> RegionResolver {
        RegionResolver {
            path: PathBuf::new(),
            searcher: Some(searcher),
        }
    }

    /// A resolver without a database: every address resolves to `None`.
    pub fn disabled() -> RegionResolver {
        RegionResolver {
            path: PathBuf::new(),
            searcher: None,
        }
    }

    /// Whether a database is loaded.
    pub fn is_loaded(&self) -> bool {
        self.searcher.is_some()
    }

    /// The path it was loaded from (empty when built in memory).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The region of `ip`; `None` without a database, for IPv6 (the data is
    /// IPv4 only) and for addresses the data does not cover.
    pub fn resolve(&self, ip: IpAddr) -> Option<Region<'_>> {
        self.searcher.as_ref()?.lookup_ip(ip).map(Region::parse)
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::super::xdb::XdbWriter;
    use super::*;

    #[test]
    fn parses_the_five_fields_with_zero_as_unknown() {
        let r = Region::parse("中国|0|江苏省|南京市|0");
        assert_eq!(r.raw, "中国|0|江苏省|南京市|0");
        assert_eq!(
            (r.country, r.area, r.province, r.city, r.isp),
            (Some("中国"), None, Some("江苏省"), Some("南京市"), None)
        );
        let short = Region::parse("美国|0");
        assert_eq!(
            (short.country, short.city, short.isp),
            (Some("美国"), None, None)
        );
        let long = Region::parse("中国|华东|上海|上海市|电信|200000");
        assert_eq!(long.isp, Some("电信"));
        assert_eq!(Region::parse("").country, None);
    }

    #[test]
    fn the_routing_key_is_the_city_else_the_province_normalised() {
        let key = |s| Region::parse(s).routing_key();
        assert_eq!(key("中国|0|江苏省|南京市|0"), Some("南京"));
        assert_eq!(key("中国|0|上海|上海市|电信"), Some("上海"));
        assert_eq!(key("中国|0|北京|北京市|电信"), Some("北京"));
        assert_eq!(key("中国|0|广东省|0|电信"), Some("广东"));
        assert_eq!(key("中国|0|广西|桂林|电信"), Some("桂林"));
        assert_eq!(key("美国|0|0|0|Level3"), None);
        assert_eq!(key("0|0|0|内网IP|内网IP"), None);
        assert!(Region::parse("0|0|0|内网IP|内网IP").is_private_network());
        assert_eq!(
            Region::parse("中国|0|上海|上海市|电信").province_key(),
            Some("上海")
        );
    }

    #[test]
    fn normalisation_meets_the_mixed_spellings_of_the_data() {
        let cases = [
            ("上海市", "上海"),
            ("上海", "上海"),
            ("江苏省", "江苏"),
            ("黑龙江省", "黑龙江"),
            ("广西壮族自治区", "广西"),
            ("新疆维吾尔自治区", "新疆"),
            ("宁夏回族自治区", "宁夏"),
            ("西藏自治区", "西藏"),
            ("内蒙古自治区", "内蒙古"),
            ("香港特别行政区", "香港"),
            ("阿里地区", "阿里"),
            ("兴安盟", "兴安"),
            ("阿坝藏族羌族自治州", "阿坝"),
            ("延边朝鲜族自治州", "延边"),
            ("黔西南布依族苗族自治州", "黔西南"),
            ("巴音郭楞蒙古自治州", "巴音郭楞"),
            ("神农架林区", "神农架"),
            ("沙市", "沙市"),
            ("嘉义县", "嘉义县"),
            ("  南京市 ", "南京"),
            ("Level3", "Level3"),
            ("", ""),
        ];
        for (raw, want) in cases {
            assert_eq!(normalise_place(raw), want, "{raw}");
        }
    }

    fn resolver() -> RegionResolver {
        let bytes = XdbWriter::new()
            .range(
                Ipv4Addr::new(1, 0, 0, 0),
                Ipv4Addr::new(1, 0, 0, 255),
                "中国|0|上海|上海市|电信",
            )
            .build()
            .unwrap();
        RegionResolver::from_searcher(XdbSearcher::from_bytes(bytes).unwrap())
    }

    #[test]
    fn resolves_ipv4_and_nothing_else() {
        let r = resolver();
        assert!(r.is_loaded());
        let found = r.resolve("1.0.0.7".parse().unwrap()).unwrap();
        assert_eq!(found.routing_key(), Some("上海"));
        assert_eq!(r.resolve("1.0.1.0".parse().unwrap()), None);
        assert_eq!(r.resolve("2001:db8::1".parse().unwrap()), None);
    }

    #[test]
    fn an_absent_or_broken_file_resolves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let absent = RegionResolver::load(&dir.path().join("ip2region.xdb"));
        assert!(!absent.is_loaded());
        assert_eq!(absent.path(), dir.path().join("ip2region.xdb"));
        assert_eq!(absent.resolve("114.114.114.114".parse().unwrap()), None);

        let broken = dir.path().join("broken.xdb");
        std::fs::write(&broken, b"not an xdb").unwrap();
        assert!(!RegionResolver::load(&broken).is_loaded());
        assert!(!RegionResolver::disabled().is_loaded());
    }

    #[test]
    fn the_real_file_gives_the_expected_routing_keys() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_XDB_PATH);
        if !path.exists() {
            println!("{} is absent: test did not run", path.display());
            return;
        }
        let r = RegionResolver::load(&path);
        let key = |a: &str| r.resolve(a.parse().unwrap()).and_then(|g| g.routing_key());
        assert_eq!(key("114.114.114.114"), Some("南京"));
        assert_eq!(key("120.24.78.129"), Some("深圳"));
        assert_eq!(key("36.112.0.1"), Some("北京"));
        assert_eq!(key("10.0.0.1"), None);
        assert_eq!(key("8.8.8.8"), None);
    }
}
