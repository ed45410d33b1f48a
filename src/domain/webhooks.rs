//! Webhook values: the endpoint URL, the event filter, and which addresses a delivery may reach.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use reqwest::Url;

use super::events::EVENT_NAMES;
use crate::error::{AppError, AppResult, FieldIssue};

/// Longest accepted endpoint URL.
pub const MAX_URL_LENGTH: usize = 2048;

/// Which non-public destinations configuration allows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    /// Development: `http://` to loopback hosts, and delivery to loopback addresses.
    pub allow_loopback: bool,
    /// Delivery to private, link-local and other non-public addresses.
    pub allow_private: bool,
}

impl AddressPolicy {
    /// Whether a delivery may connect to `ip`.
    pub fn allows(self, ip: IpAddr) -> bool {
        match classify(ip) {
            AddressClass::Public => true,
            AddressClass::Loopback => self.allow_loopback,
            AddressClass::Private => self.allow_private,
        }
    }
}

/// Where an address points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressClass {
    Public,
    Loopback,
    /// Private, link-local, shared (CGNAT), unique-local, unspecified, multicast, documentation…
    Private,
}

/// Classifies an address (IPv4-mapped IPv6 addresses as their IPv4 address).
pub fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => classify_v4(v4),
            None => classify_v6(v6),
        },
    }
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    let o = ip.octets();
    if ip.is_loopback() {
        AddressClass::Loopback
    } else if ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || o[0] == 0
        || (o[0] == 100 && (64..128).contains(&o[1])) // 100.64.0.0/10, shared address space
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // 192.0.0.0/24, protocol assignments
        || (o[0] == 198 && (18..20).contains(&o[1])) // 198.18.0.0/15, benchmarking
        || o[0] >= 240
    {
        AddressClass::Private
    } else {
        AddressClass::Public
    }
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    let first = ip.segments()[0];
    if ip.is_loopback() {
        AddressClass::Loopback
    } else if ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // fc00::/7 unique local
        || (first & 0xffc0) == 0xfe80 // fe80::/10 link-local
        || (first & 0xffc0) == 0xfec0 // fec0::/10 site-local (deprecated)
        || first == 0x2001 && ip.segments()[1] == 0x0db8 // documentation
        || first == 0x0064 && ip.segments()[1] == 0xff9b
    // NAT64 can reach IPv4 private space
    {
        AddressClass::Private
    } else {
        AddressClass::Public
    }
}

fn is_loopback_name(host: &str) -> bool {
    host == "localhost" || host.ends_with(".localhost")
}

/// Parses and checks an endpoint URL: `https://` to a public host, or `http://` to a loopback
/// host when the policy allows loopback (development). No credentials in the URL. Host names
/// are checked again at every delivery, after resolution.
pub fn parse_endpoint_url(raw: &str, policy: AddressPolicy) -> AppResult<Url> {
    parse_outbound_url("url", raw, policy)
}

/// [`parse_endpoint_url`] for any URL Janua will fetch (errors name `field`).
pub fn parse_outbound_url(field: &str, raw: &str, policy: AddressPolicy) -> AppResult<Url> {
    let raw = raw.trim();
    let refuse = || AppError::field(field, FieldIssue::UrlNotAllowed);
    if raw.is_empty() {
        return Err(AppError::field(field, FieldIssue::Required));
    }
    if raw.len() > MAX_URL_LENGTH {
        return Err(AppError::field(field, FieldIssue::TooLong(MAX_URL_LENGTH)));
    }
    let url = Url::parse(raw).map_err(|_| AppError::field(field, FieldIssue::InvalidFormat))?;
    if !url.username().is_empty() || url.password().is_some() || url.fragment().is_some() {
        return Err(AppError::field(field, FieldIssue::InvalidFormat));
    }
    let host =
        url.host_str().ok_or_else(|| AppError::field(field, FieldIssue::InvalidFormat))?.to_ascii_lowercase();
    let literal = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>();
    let class = match literal {
        Ok(ip) => classify(ip),
        Err(_) if is_loopback_name(&host) => AddressClass::Loopback,
        Err(_) => AddressClass::Public,
    };
    let allowed = match class {
        AddressClass::Public => true,
        AddressClass::Loopback => policy.allow_loopback,
        AddressClass::Private => policy.allow_private,
    };
    let scheme_ok = match url.scheme() {
        "https" => true,
        "http" => class == AddressClass::Loopback && policy.allow_loopback,
        _ => false,
    };
    if !allowed || !scheme_ok {
        return Err(refuse());
    }
    Ok(url)
}

/// Checks an event filter: names from API.md §4 or `*`, at least one; duplicates removed,
/// order kept.
pub fn parse_event_filter(events: Vec<String>) -> AppResult<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for e in events {
        let e = e.trim().to_owned();
        if e != "*" && !EVENT_NAMES.contains(&e.as_str()) {
            return Err(AppError::field("events", FieldIssue::UnknownEvent));
        }
        if !out.contains(&e) {
            out.push(e);
        }
    }
    if out.is_empty() {
        return Err(AppError::field("events", FieldIssue::Required));
    }
    Ok(out)
}

/// Whether a filter (as stored) selects `event_type`.
pub fn filter_matches(filter: &serde_json::Value, event_type: &str) -> bool {
    filter.as_array().is_some_and(|a| a.iter().any(|e| e == "*" || e == event_type))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_classified() {
        for (ip, class) in [
            ("8.8.8.8", AddressClass::Public),
            ("127.0.0.1", AddressClass::Loopback),
            ("::1", AddressClass::Loopback),
            ("10.1.2.3", AddressClass::Private),
            ("172.16.0.1", AddressClass::Private),
            ("192.168.1.1", AddressClass::Private),
            ("169.254.169.254", AddressClass::Private),
            ("100.64.0.1", AddressClass::Private),
            ("0.0.0.0", AddressClass::Private),
            ("fe80::1", AddressClass::Private),
            ("fd00::1", AddressClass::Private),
            ("::ffff:10.0.0.1", AddressClass::Private),
            ("::ffff:127.0.0.1", AddressClass::Loopback),
            ("2606:4700::1111", AddressClass::Public),
        ] {
            assert_eq!(classify(ip.parse().unwrap()), class, "{ip}");
        }
        let dev = AddressPolicy { allow_loopback: true, allow_private: false };
        assert!(dev.allows("127.0.0.1".parse().unwrap()));
        assert!(!dev.allows("10.0.0.1".parse().unwrap()));
        assert!(!AddressPolicy::default().allows("127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn urls_are_checked() {
        let strict = AddressPolicy::default();
        let dev = AddressPolicy { allow_loopback: true, allow_private: false };
        assert!(parse_endpoint_url("https://hooks.example.com/janua", strict).is_ok());
        for bad in [
            "http://hooks.example.com/x",
            "https://10.0.0.8/x",
            "https://169.254.169.254/latest/meta-data",
            "https://[fe80::1]/x",
            "https://localhost/x",
            "http://127.0.0.1:9000/x",
            "ftp://example.com/x",
        ] {
            let e = parse_endpoint_url(bad, strict).unwrap_err();
            assert_eq!(e.fields["url"], FieldIssue::UrlNotAllowed, "{bad}");
        }
        assert!(parse_endpoint_url("https://user:pw@example.com/", strict).is_err());
        assert!(parse_endpoint_url("not a url", strict).is_err());
        assert!(parse_endpoint_url("http://127.0.0.1:9000/x", dev).is_ok());
        assert!(parse_endpoint_url("http://localhost:9000/x", dev).is_ok());
        assert!(parse_endpoint_url("http://example.com/x", dev).is_err());
        assert!(parse_endpoint_url("https://10.0.0.8/x", dev).is_err());
    }

    #[test]
    fn event_filters() {
        assert_eq!(
            parse_event_filter(vec!["user.created".into(), "user.created".into(), "*".into()]).unwrap(),
            ["user.created", "*"]
        );
        assert!(parse_event_filter(vec![]).is_err());
        assert!(parse_event_filter(vec!["user.exploded".into()]).is_err());
        let f = serde_json::json!(["session.created"]);
        assert!(filter_matches(&f, "session.created"));
        assert!(!filter_matches(&f, "session.revoked"));
        assert!(filter_matches(&serde_json::json!(["*"]), "anything"));
    }
}
