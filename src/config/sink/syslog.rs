//! The validator of a `type = "syslog"` sink.

use super::*;

/// The settings of a syslog sink, or `None` after pushing its problems.
pub(super) fn validate(errs: &mut Vec<ConfigProblem>, key: &str, rs: RawSink) -> Option<SinkKind> {
    let address = match rs.address {
        Some(a)
            if a.rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok()) =>
        {
            a
        }
        Some(a) => {
            errs.push(ConfigProblem::new(
                format!("{key}.address"),
                format!("{a:?} is not host:port"),
            ));
            String::new()
        }
        None => {
            errs.push(ConfigProblem::new(
                format!("{key}.address"),
                "missing: the receiver as host:port, e.g. siem.example.com:6514",
            ));
            String::new()
        }
    };
    let protocol = match rs.protocol.as_deref().unwrap_or("tcp") {
        "udp" => Protocol::Udp,
        "tcp" => Protocol::Tcp,
        "tls" => Protocol::Tls,
        other => {
            errs.push(ConfigProblem::new(
                format!("{key}.protocol"),
                format!("unknown protocol {other:?}; use udp, tcp or tls"),
            ));
            Protocol::Tcp
        }
    };
    let framing = match rs.framing.as_deref() {
        None | Some("octet_counting") => Framing::OctetCounting,
        Some("newline") => Framing::Newline,
        Some(other) => {
            errs.push(ConfigProblem::new(
                format!("{key}.framing"),
                format!("unknown framing {other:?}; use octet_counting or newline"),
            ));
            Framing::OctetCounting
        }
    };
    if protocol == Protocol::Udp && rs.framing.is_some() {
        errs.push(ConfigProblem::new(
            format!("{key}.framing"),
            "only applies to tcp and tls; UDP sends one datagram per event",
        ));
    }
    if protocol == Protocol::Tls && framing == Framing::Newline {
        errs.push(ConfigProblem::new(
            format!("{key}.framing"),
            "RFC 5425 (syslog over TLS) requires octet_counting",
        ));
    }
    let rfc = match rs
        .rfc
        .as_ref()
        .map(|v| v.to_string().trim_matches('"').to_owned())
    {
        None => Rfc::Rfc5424,
        Some(s) if s == "5424" => Rfc::Rfc5424,
        Some(s) if s == "3164" => Rfc::Rfc3164,
        Some(s) => {
            errs.push(ConfigProblem::new(
                format!("{key}.rfc"),
                format!("{s} is not 5424 or 3164"),
            ));
            Rfc::Rfc5424
        }
    };
    let app_name = rs.app_name.unwrap_or_else(|| "docspace-siem".to_owned());
    if app_name.is_empty()
        || app_name.len() > 48
        || !app_name.bytes().all(|b| (33..=126).contains(&b))
    {
        errs.push(ConfigProblem::new(
            format!("{key}.app_name"),
            "must be 1–48 printable ASCII characters without spaces (RFC 5424 APP-NAME)",
        ));
    }
    let facility = match &rs.facility {
        None => 10,
        Some(v) => match crate::syslog::parse_facility(v) {
            Some(f) => f,
            None => {
                errs.push(ConfigProblem::new(
                    format!("{key}.facility"),
                    format!("{v} is not a facility name (auth, authpriv, local0…local7, …) or number 0–23"),
                ));
                10
            }
        },
    };
    if let Some(h) = &rs.hostname
        && (h.is_empty() || h.len() > 255 || !h.bytes().all(|b| (33..=126).contains(&b)))
    {
        errs.push(ConfigProblem::new(
            format!("{key}.hostname"),
            "must be 1–255 printable ASCII characters without spaces",
        ));
    }
    let max_datagram = rs.max_datagram.unwrap_or(2048);
    if !(480..=65_507).contains(&max_datagram) {
        errs.push(ConfigProblem::new(
            format!("{key}.max_datagram"),
            "must be between 480 and 65507 (RFC 5426)",
        ));
    }
    let max_events_per_second = rs.max_events_per_second.unwrap_or(match protocol {
        Protocol::Udp => UDP_EVENTS_PER_SECOND,
        Protocol::Tcp | Protocol::Tls => 0.0,
    });
    if !(max_events_per_second == 0.0 || (1.0..=1_000_000.0).contains(&max_events_per_second)) {
        errs.push(ConfigProblem::new(
            format!("{key}.max_events_per_second"),
            "must be 0 (no limit) or between 1 and 1000000",
        ));
    }
    let raw_tls = rs.tls.unwrap_or_default();
    if protocol != Protocol::Tls
        && (raw_tls.ca_file.is_some() || raw_tls.cert_file.is_some() || raw_tls.key_file.is_some())
    {
        errs.push(ConfigProblem::new(
            format!("{key}.tls"),
            "tls settings need protocol = \"tls\"",
        ));
    }
    if raw_tls.cert_file.is_some() != raw_tls.key_file.is_some() {
        errs.push(ConfigProblem::new(
            format!("{key}.tls"),
            "mutual TLS needs both cert_file and key_file",
        ));
    }
    let tls = SyslogTls {
        ca_file: check_file(errs, &format!("{key}.tls.ca_file"), &raw_tls.ca_file),
        cert_file: check_file(errs, &format!("{key}.tls.cert_file"), &raw_tls.cert_file),
        key_file: check_file(errs, &format!("{key}.tls.key_file"), &raw_tls.key_file)
            .inspect(|p| check_secret_mode(errs, &format!("{key}.tls.key_file"), p)),
        server_name: raw_tls.server_name,
        insecure_skip_verify: raw_tls.insecure_skip_verify,
    };
    Some(SinkKind::Syslog(SyslogConfig {
        address,
        protocol,
        framing,
        rfc,
        app_name,
        facility,
        hostname: rs.hostname,
        max_datagram: max_datagram as usize,
        max_events_per_second,
        write_timeout: duration(
            errs,
            &format!("{key}.write_timeout"),
            rs.write_timeout.as_deref(),
            Duration::from_secs(30),
        ),
        connect_timeout: duration(
            errs,
            &format!("{key}.connect_timeout"),
            rs.connect_timeout.as_deref(),
            Duration::from_secs(10),
        ),
        tls,
    }))
}
