//! The optional country filter: a MaxMind country database the user supplies (rhizo ships no
//! country list) and the ISO codes to refuse.

use std::{net::IpAddr, path::Path, sync::Arc};

/// A filter: `true` = the address may connect.
pub type IpFilter = Arc<dyn Fn(IpAddr) -> bool + Send + Sync>;

/// Why the database could not be used.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot use the country database {path}: {reason} (give a MaxMind GeoLite2 or GeoIP2 \
     Country/City .mmdb file with --geoip-db)"
)]
pub struct GeoIpError {
    /// The file.
    pub path: String,
    /// Why.
    pub reason: String,
}

/// Opens `db` and builds a filter refusing addresses located in `blocked` (ISO 3166 codes).
/// Addresses the database does not know (private ranges, loopback) are allowed.
pub fn country_filter(db: &Path, blocked: &[String]) -> Result<IpFilter, GeoIpError> {
    let reader = maxminddb::Reader::open_readfile(db).map_err(|e| GeoIpError {
        path: db.display().to_string(),
        reason: e.to_string(),
    })?;
    let blocked: Vec<String> = blocked.iter().map(|c| c.to_ascii_uppercase()).collect();
    Ok(Arc::new(move |ip: IpAddr| {
        country_of(&reader, ip).is_none_or(|code| !blocked.contains(&code))
    }))
}

/// The ISO country code the database gives for `ip`, if any.
pub fn country_of<S: AsRef<[u8]>>(reader: &maxminddb::Reader<S>, ip: IpAddr) -> Option<String> {
    let result = reader.lookup(ip).ok()?;
    let country = result.decode::<maxminddb::geoip2::Country>().ok()??;
    country
        .country
        .iso_code
        .or(country.registered_country.iso_code)
        .map(str::to_ascii_uppercase)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// MaxMind's own test database (MIT licensed, from github.com/maxmind/MaxMind-DB at
    /// 2f18851d; see tests/data/MaxMind-DB-LICENSE-MIT). Its entries are documentation data;
    /// nothing here contacts any address.
    fn db() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/GeoLite2-Country-Test.mmdb")
    }

    #[test]
    fn refuses_only_the_blocked_countries_and_allows_unknown_addresses() {
        let filter = country_filter(&db(), &["gb".to_string()]).unwrap();
        assert!(!filter("81.2.69.142".parse().unwrap()), "GB is blocked");
        assert!(filter("89.160.20.112".parse().unwrap()), "SE is not");
        assert!(
            filter("127.0.0.1".parse().unwrap()),
            "loopback is unknown: allowed"
        );
        assert!(filter("::1".parse().unwrap()));
    }

    #[test]
    fn a_missing_or_corrupt_database_is_a_clear_error() {
        let e = country_filter(Path::new("/nonexistent.mmdb"), &[])
            .err()
            .unwrap();
        assert!(e.to_string().contains("--geoip-db"), "{e}");
        let tmp = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(tmp.path(), b"not a database").unwrap();
        assert!(country_filter(tmp.path(), &["GB".into()]).is_err());
    }
}
