//! Query binding as ASP.NET Core does it for the portal: names, enums, GUIDs, dates.

use std::collections::BTreeMap;

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

use crate::*;

// ---------------------------------------------------------------------------------------------
// Query binding (ASP.NET Core model binding as the portal does it)
// ---------------------------------------------------------------------------------------------

/// Bound and validated filter parameters.
#[derive(Debug)]
pub(crate) struct FilterParams {
    pub(crate) user_id: Option<String>,
    pub(crate) action: Option<i32>,
    pub(crate) from: Option<OffsetDateTime>,
    pub(crate) to: Option<OffsetDateTime>,
    pub(crate) count: usize,
    pub(crate) start_index: usize,
    pub(crate) module_type: Option<i32>,
    pub(crate) action_type: Option<i32>,
    pub(crate) entry_type: Option<i32>,
    pub(crate) target: Option<String>,
}

impl FilterParams {
    pub(crate) fn parse(
        query: &str,
        audit: bool,
        local: Option<UtcOffset>,
    ) -> Result<FilterParams, BTreeMap<String, Vec<String>>> {
        let pairs = parse_query(query);
        let get = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        let mut errors: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut err = |key: &str, msg: String| errors.entry(key.to_owned()).or_default().push(msg);

        let mut p = FilterParams {
            user_id: None,
            action: None,
            from: None,
            to: None,
            count: 100,
            start_index: 0,
            module_type: None,
            action_type: None,
            entry_type: None,
            target: None,
        };

        if let Some(v) = get("userId").filter(|v| !v.is_empty()) {
            match parse_guid(v) {
                Some(g) if g == "00000000-0000-0000-0000-000000000000" => {}
                Some(g) => p.user_id = Some(g),
                None => err("userId", format!("The value '{v}' is not valid.")),
            }
        }
        if let Some(v) = get("action").filter(|v| !v.is_empty()) {
            match parse_enum(v, message_action_by_name, message_action_defined) {
                Some(-1) => {}
                Some(a) => p.action = Some(a),
                None => err("action", format!("The value '{v}' is invalid.")),
            }
        }
        for (key, slot) in [("from", &mut p.from), ("to", &mut p.to)] {
            if let Some(v) = get(key).filter(|v| !v.is_empty()) {
                match parse_api_date(v) {
                    Some((d, Some(zone))) => *slot = Some(d.assume_offset(zone)),
                    Some((d, None)) => match local {
                        Some(zone) => *slot = Some(d.assume_offset(zone)),
                        // v3.7.1+: the converter's null `TenantManager` throws a
                        // NullReferenceException, which the binder reports without a message
                        // (ASP.NET Core's default text) [inferred].
                        None => err(key, "The input was not valid.".to_owned()),
                    },
                    None => err(key, format!("The value '{v}' is not valid.")),
                }
            }
        }
        if let Some(v) = get("count") {
            match v.trim().parse::<i32>() {
                Ok(n) if (1..=100).contains(&n) => p.count = usize::try_from(n).unwrap_or(100),
                Ok(_) => err(
                    "count",
                    "The field Count must be between 1 and 100.".to_owned(),
                ),
                Err(_) => err("count", format!("The value '{v}' is not valid.")),
            }
        }
        if let Some(v) = get("startIndex") {
            match v.trim().parse::<i32>() {
                Ok(n) => p.start_index = usize::try_from(n.max(0)).unwrap_or(0),
                Err(_) => err("startIndex", format!("The value '{v}' is not valid.")),
            }
        }
        if audit {
            if let Some(v) = get("moduleType").filter(|v| !v.is_empty()) {
                match parse_enum(
                    v,
                    |n| table_by_name(LOCATION_TYPES, n),
                    |n| table_defined(LOCATION_TYPES, n),
                ) {
                    Some(m) => p.module_type = Some(m),
                    None => err("moduleType", format!("The value '{v}' is invalid.")),
                }
            }
            if let Some(v) = get("actionType").filter(|v| !v.is_empty()) {
                match parse_enum(
                    v,
                    |n| table_by_name(ACTION_TYPES, n),
                    |n| table_defined(ACTION_TYPES, n),
                ) {
                    Some(t) => p.action_type = Some(t),
                    None => err("actionType", format!("The value '{v}' is invalid.")),
                }
            }
            if let Some(v) = get("entryType").filter(|v| !v.is_empty()) {
                match parse_enum(
                    v,
                    |n| table_by_name(ENTRY_TYPES, n),
                    |n| table_defined(ENTRY_TYPES, n),
                ) {
                    Some(e) => p.entry_type = Some(e),
                    None => err("entryType", format!("The value '{v}' is invalid.")),
                }
            }
            p.target = get("target").filter(|v| !v.is_empty()).map(str::to_owned);
        }
        if errors.is_empty() {
            Ok(p)
        } else {
            Err(errors)
        }
    }

    /// Whether only `from`/`to` can reject a row (so the matches of a date range are the
    /// range itself).
    pub(crate) fn dates_only(&self) -> bool {
        self.user_id.is_none()
            && self.action.is_none()
            && self.module_type.unwrap_or(0) == 0
            && self.action_type.unwrap_or(0) == 0
            && (self.entry_type.unwrap_or(0) == 0 || self.target.is_none())
    }

    pub(crate) fn matches(&self, ev: &SimEvent) -> bool {
        if self
            .user_id
            .as_ref()
            .is_some_and(|u| !ev.user_id.eq_ignore_ascii_case(u))
        {
            return false;
        }
        if self.from.is_some_and(|f| ev.date < f) || self.to.is_some_and(|t| ev.date > t) {
            return false;
        }
        let joined_target = || ev.target.as_ref().map(|t| t.join(",")).unwrap_or_default();
        match self.action {
            Some(a) => {
                if ev.action_id != a {
                    return false;
                }
                match &self.target {
                    Some(t) if ev.stream == SimStream::Audit => joined_target() == *t,
                    _ => true,
                }
            }
            None if ev.stream == SimStream::Audit => {
                if self.module_type.is_some_and(|m| m != 0 && ev.location != m) {
                    return false;
                }
                if self
                    .action_type
                    .is_some_and(|t| t != 0 && ev.action_type != t)
                {
                    return false;
                }
                match (self.entry_type, &self.target) {
                    (Some(e), Some(t)) if e != 0 => joined_target().contains(t.as_str()),
                    _ => true,
                }
            }
            None => true,
        }
    }
}

/// Splits a raw query into decoded `(name, value)` pairs (`+` → space, `%XX` → byte; invalid
/// escapes stay literal, as in ASP.NET Core).
pub(crate) fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|s| !s.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => match (
                bytes.get(i + 1).copied().and_then(hex_val),
                bytes.get(i + 2).copied().and_then(hex_val),
            ) {
                (Some(hi), Some(lo)) => {
                    out.push(hi * 16 + lo);
                    i += 3;
                }
                _ => {
                    out.push(b'%');
                    i += 1;
                }
            },
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `System.Guid` parsing: `D` (hyphenated), `N` (32 digits), `B` `{..}` and `P` `(..)` forms.
pub(crate) fn parse_guid(s: &str) -> Option<String> {
    let t = s.trim();
    let inner = t
        .strip_prefix('{')
        .and_then(|x| x.strip_suffix('}'))
        .or_else(|| t.strip_prefix('(').and_then(|x| x.strip_suffix(')')))
        .unwrap_or(t);
    let b = inner.as_bytes();
    let hex: String = if b.len() == 36 {
        if [8, 13, 18, 23].iter().any(|&i| b[i] != b'-') {
            return None;
        }
        inner.chars().filter(|&c| c != '-').collect()
    } else if b.len() == 32 {
        inner.to_owned()
    } else {
        return None;
    };
    if hex.len() != 32 || !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let h = hex.to_ascii_lowercase();
    Some(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

/// Enum binding: an integer must be a defined value; otherwise a case-insensitive member name.
pub(crate) fn parse_enum(
    v: &str,
    by_name: impl Fn(&str) -> Option<i32>,
    defined: impl Fn(i64) -> bool,
) -> Option<i32> {
    let t = v.trim();
    if let Ok(n) = t.parse::<i64>() {
        return if defined(n) {
            i32::try_from(n).ok()
        } else {
            None
        };
    }
    by_name(t)
}

pub(crate) fn digits(b: &[u8]) -> Option<u32> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    b.iter().try_fold(0u32, |acc, d| {
        acc.checked_mul(10)?.checked_add(u32::from(d - b'0'))
    })
}

/// `ApiDateTime` parsing. Accepted: `yyyy-MM-dd`, `yyyy-MM-ddTHH:mm:ss` (or `HH-mm-ss`) with an
/// optional `.fff` or `.fffffff`, then an optional `Z` or `±hh:mm`. Returns the clock time and its
/// zone, `None` for a value without one (the caller decides what that means).
pub(crate) fn parse_api_date(s: &str) -> Option<(PrimitiveDateTime, Option<UtcOffset>)> {
    let b = s.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = i32::try_from(digits(&b[0..4])?).ok()?;
    let month = Month::try_from(u8::try_from(digits(&b[5..7])?).ok()?).ok()?;
    let day = u8::try_from(digits(&b[8..10])?).ok()?;
    let date = Date::from_calendar_date(year, month, day).ok()?;
    if b.len() == 10 {
        return Some((PrimitiveDateTime::new(date, Time::MIDNIGHT), None));
    }
    if b.len() < 19 || b[10] != b'T' {
        return None;
    }
    let sep = b[13];
    if !(sep == b':' || sep == b'-') || b[16] != sep {
        return None;
    }
    let hour = u8::try_from(digits(&b[11..13])?).ok()?;
    let minute = u8::try_from(digits(&b[14..16])?).ok()?;
    let second = u8::try_from(digits(&b[17..19])?).ok()?;
    let mut i = 19;
    let mut nanos = 0u32;
    if b.get(i) == Some(&b'.') {
        let n = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if n != 3 && n != 7 {
            return None;
        }
        let frac = digits(&b[i + 1..i + 1 + n])?;
        nanos = if n == 3 { frac * 1_000_000 } else { frac * 100 };
        i += 1 + n;
    }
    let time = Time::from_hms_nano(hour, minute, second, nanos).ok()?;
    let dt = PrimitiveDateTime::new(date, time);
    let rest = &b[i..];
    let offset = match rest {
        [] => return Some((dt, None)),
        [b'Z'] => UtcOffset::UTC,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let hh = i8::try_from(digits(&[*h1, *h2])?).ok()?;
            let mm = i8::try_from(digits(&[*m1, *m2])?).ok()?;
            if hh > 14 || mm > 59 {
                return None;
            }
            let (hh, mm) = if *sign == b'-' { (-hh, -mm) } else { (hh, mm) };
            UtcOffset::from_hms(hh, mm, 0).ok()?
        }
        _ => return None,
    };
    Some((dt, Some(offset)))
}
