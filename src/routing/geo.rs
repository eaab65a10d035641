//! A customer's city from a WeChat location, offline.
//!
//! Official Accounts report a follower's coordinates (the LOCATION event,
//! when the account asks for it) and customers may send a location message
//! (coordinates and a label such as `广东省深圳市南山区科技园`). Routing needs a
//! city name to look up in the region → group map; WeChat's own reverse
//! geocoding is an online API Kefu does not depend on. This module keeps
//! the centres of China's main cities (every provincial capital and the
//! largest prefecture cities) and takes the nearest one within
//! [`MAX_DISTANCE_KM`]: coarse, but it is only a first guess for newcomers
//! (the CRM's region always wins).

/// Farther than this from every known centre: no city.
pub const MAX_DISTANCE_KM: f64 = 80.0;

/// (city, latitude, longitude) of the city centre.
const CITIES: &[(&str, f64, f64)] = &[
    ("北京", 39.904, 116.407),
    ("上海", 31.230, 121.474),
    ("天津", 39.084, 117.201),
    ("重庆", 29.563, 106.551),
    ("广州", 23.129, 113.264),
    ("深圳", 22.543, 114.058),
    ("杭州", 30.274, 120.155),
    ("南京", 32.060, 118.797),
    ("苏州", 31.299, 120.585),
    ("武汉", 30.593, 114.305),
    ("成都", 30.573, 104.066),
    ("西安", 34.341, 108.940),
    ("郑州", 34.747, 113.625),
    ("长沙", 28.228, 112.939),
    ("济南", 36.651, 117.120),
    ("青岛", 36.067, 120.383),
    ("沈阳", 41.806, 123.432),
    ("大连", 38.914, 121.615),
    ("哈尔滨", 45.803, 126.535),
    ("长春", 43.817, 125.324),
    ("石家庄", 38.042, 114.515),
    ("太原", 37.870, 112.549),
    ("合肥", 31.821, 117.227),
    ("福州", 26.075, 119.296),
    ("厦门", 24.480, 118.089),
    ("南昌", 28.682, 115.858),
    ("昆明", 25.039, 102.718),
    ("贵阳", 26.647, 106.630),
    ("南宁", 22.817, 108.366),
    ("海口", 20.044, 110.199),
    ("兰州", 36.061, 103.834),
    ("西宁", 36.617, 101.778),
    ("银川", 38.487, 106.231),
    ("乌鲁木齐", 43.825, 87.617),
    ("拉萨", 29.652, 91.172),
    ("呼和浩特", 40.842, 111.749),
    ("宁波", 29.868, 121.544),
    ("无锡", 31.491, 120.312),
    ("东莞", 23.021, 113.752),
    ("佛山", 23.022, 113.122),
    ("温州", 27.994, 120.699),
    ("珠海", 22.271, 113.577),
    ("常州", 31.811, 119.974),
    ("南通", 31.980, 120.894),
    ("徐州", 34.205, 117.285),
    ("烟台", 37.464, 121.448),
    ("泉州", 24.874, 118.676),
    ("绍兴", 30.030, 120.580),
    ("嘉兴", 30.746, 120.755),
    ("金华", 29.079, 119.647),
    ("台州", 28.656, 121.421),
    ("惠州", 23.111, 114.416),
    ("中山", 22.517, 113.392),
    ("洛阳", 34.620, 112.454),
    ("潍坊", 36.707, 119.162),
    ("临沂", 35.105, 118.356),
    ("扬州", 32.394, 119.413),
    ("唐山", 39.631, 118.180),
    ("保定", 38.874, 115.465),
];

/// The known city nearest to a point, if one is within
/// [`MAX_DISTANCE_KM`].
pub fn city_at(latitude: f64, longitude: f64) -> Option<&'static str> {
    if !latitude.is_finite() || !longitude.is_finite() {
        return None;
    }
    CITIES
        .iter()
        .map(|(name, lat, lng)| (name, distance_km(latitude, longitude, *lat, *lng)))
        .filter(|(_, d)| *d <= MAX_DISTANCE_KM)
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(name, _)| *name)
}

/// The first known city named in a text (a location's label such as
/// `广东省深圳市南山区…`), by position in the text.
pub fn city_in_text(text: &str) -> Option<&'static str> {
    CITIES
        .iter()
        .filter_map(|(name, _, _)| text.find(name).map(|at| (at, *name)))
        .min_by_key(|(at, _)| *at)
        .map(|(_, name)| name)
}

/// Great-circle distance (haversine), in kilometres.
fn distance_km(lat1: f64, lng1: f64, lat2: f64, lng2: f64) -> f64 {
    const EARTH_RADIUS_KM: f64 = 6371.0;
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = (lat2 - lat1).to_radians();
    let dl = (lng2 - lng1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * a.sqrt().asin()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_in_a_city_find_it() {
        // People's Square, Shanghai; Futian, Shenzhen; Zhongguancun, Beijing.
        assert_eq!(city_at(31.2323, 121.4691), Some("上海"));
        assert_eq!(city_at(22.5415, 114.0596), Some("深圳"));
        assert_eq!(city_at(39.9834, 116.3160), Some("北京"));
        // Pudong airport is 30 km from the centre: still Shanghai.
        assert_eq!(city_at(31.1443, 121.8083), Some("上海"));
    }

    #[test]
    fn far_from_every_city_is_none() {
        // The middle of the Taklamakan desert, the Pacific, garbage.
        assert_eq!(city_at(38.9, 83.0), None);
        assert_eq!(city_at(0.0, 160.0), None);
        assert_eq!(city_at(f64::NAN, 121.0), None);
    }

    #[test]
    fn labels_name_their_city() {
        assert_eq!(city_in_text("广东省深圳市南山区科技园"), Some("深圳"));
        assert_eq!(city_in_text("上海市黄浦区人民广场"), Some("上海"));
        assert_eq!(city_in_text("somewhere"), None);
    }

    #[test]
    fn distances_are_plausible() {
        // Shanghai to Beijing is about 1,070 km.
        let d = distance_km(31.230, 121.474, 39.904, 116.407);
        assert!((1000.0..1150.0).contains(&d), "{d}");
    }
}
