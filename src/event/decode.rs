//! Row decoding: a DocSpace login or audit row's JSON text into an [`Event`], by the scan-based
//! fast path ([`crate::scan`], one pass, strings unescaped straight into the event) and by the
//! serde path that decides whatever the fast path gives up on; plus the `id`/`date` skim of a
//! row and the capping of string fields.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use time::OffsetDateTime;

use super::dates::{parse_date, parse_date_keep_offset, to_utc};
use super::{
    Event, EventError, F_ACTION, F_BROWSER, F_CITY, F_CONTEXT, F_COUNTRY, F_DATE, F_IP, F_LOGIN,
    F_PAGE, F_PLATFORM, F_USER, F_USER_ID, FIELDS, MAX_FIELD_BYTES, PortalInfo, Span, Stream,
    TRUNCATED_MARK, push_span,
};

impl Event {
    /// Decodes one DocSpace row given as a JSON value (tests, `encode`, fuzzing). `stream` is
    /// the log it was read from; when `None` it is derived from the action code (SPEC:
    /// 1000–1999 are logins).
    pub fn from_json(
        portal: Arc<PortalInfo>,
        stream: Option<Stream>,
        value: Value,
    ) -> Result<Event, EventError> {
        if !value.is_object() {
            return Err(EventError::NotAnObject);
        }
        // A Value always serialises.
        let text = serde_json::to_string(&value).unwrap_or_default();
        Event::from_row_text(portal, stream, &text)
    }

    /// Decodes one row from its JSON text, as it lies in a page (the hot path: strings are
    /// borrowed from the text, nothing is built but the event itself).
    pub fn from_row_text(
        portal: Arc<PortalInfo>,
        stream: Option<Stream>,
        row: &str,
    ) -> Result<Event, EventError> {
        if let Some(ev) = Event::from_row_scan(&portal, stream, row) {
            return Ok(ev);
        }
        Event::from_row_serde(portal, stream, row)
    }

    /// The hot path of [`Event::from_row_text`]: the row read by [`crate::scan`] in one pass,
    /// strings unescaped straight into the event's buffer. `None` for anything it leaves to
    /// [`Event::from_row_serde`] (a number or `null` where a string is usual, a string where
    /// an integer is usual, a duplicate key, a surrogate escape, a missing or unreadable `id`,
    /// `date` or `actionId`, malformed JSON): that path then decides, so both always agree.
    pub(super) fn from_row_scan(
        portal: &Arc<PortalInfo>,
        stream: Option<Stream>,
        row: &str,
    ) -> Option<Event> {
        let mut sc = crate::scan::Scanner::new(row);
        let mut ev = Event::scan_row(portal, stream, &mut sc)?;
        if !sc.at_end() {
            return None;
        }
        if ev.raw.len as usize != row.len() {
            // Whitespace around the object: `raw` is the text as given.
            ev.raw = push_span(&mut ev.text, row);
        }
        Some(ev)
    }

    /// Decodes the row object that comes next in `sc` (after whitespace) and moves past it, as
    /// [`Event::from_row_text`] would decode its text; `None` (with `sc` somewhere inside the
    /// row) for what the scan path leaves to serde_json. The source reads a whole page this
    /// way in one pass.
    pub fn scan_row(
        portal: &Arc<PortalInfo>,
        stream: Option<Stream>,
        sc: &mut crate::scan::Scanner<'_>,
    ) -> Option<Event> {
        sc.ws();
        let row_start = sc.pos();
        // Unescaped values are never longer than the row, and the row itself follows them.
        let mut text = String::with_capacity(if sc.row_hint == 0 {
            1024
        } else {
            2 * sc.row_hint + 64
        });
        let mut spans = [Span::NONE; FIELDS];
        let mut seen = 0u32;
        let (mut id, mut action_id) = (None, None);
        let (mut action_type, mut product, mut location) = (None, None, None);
        let mut date = None;
        let mut target = Vec::new();
        let mut entries = Vec::new();
        sc.object(|sc, key| {
            let Some(k) = key_index(key) else {
                return sc.skip_value(1);
            };
            if seen & (1 << k) != 0 {
                return None;
            }
            seen |= 1 << k;
            match k {
                K_ID => id = Some(sc.uint()?),
                K_ACTION_ID => action_id = Some(sc.uint()?),
                K_ACTION_TYPE => action_type = Some(sc.uint()?),
                K_PRODUCT => product = Some(sc.uint()?),
                K_LOCATION => location = Some(sc.uint()?),
                K_DATE => {
                    let start = text.len();
                    sc.string_into(&mut text)?;
                    let d = parse_date_keep_offset(text.get(start..)?).ok()?;
                    date = Some(d);
                    spans[F_DATE] = Span::since(start, &text);
                }
                K_TARGET => {
                    sc.ws();
                    if sc.peek() == Some(b'[') {
                        sc.array(|sc| {
                            target.push(scan_capped(sc)?);
                            Some(())
                        })?;
                    } else {
                        target.push(scan_capped(sc)?);
                    }
                }
                K_ENTRIES => sc.array(|sc| {
                    entries.push(sc.uint()?);
                    Some(())
                })?,
                _ => {
                    let field = match k {
                        K_ACTION => F_ACTION,
                        K_USER => F_USER,
                        K_USER_ID => F_USER_ID,
                        K_LOGIN => F_LOGIN,
                        K_IP => F_IP,
                        K_COUNTRY => F_COUNTRY,
                        K_CITY => F_CITY,
                        K_BROWSER => F_BROWSER,
                        K_PLATFORM => F_PLATFORM,
                        K_PAGE => F_PAGE,
                        K_CONTEXT => F_CONTEXT,
                        _ => return None,
                    };
                    let start = text.len();
                    sc.string_into(&mut text)?;
                    cap_from(&mut text, start);
                    if text.len() > start {
                        spans[field] = Span::since(start, &text);
                    }
                }
            }
            Some(())
        })?;
        let row = sc.since(row_start)?;
        sc.row_hint = row.len();
        let raw = push_span(&mut text, row);
        let (id, date, action_id) = (id?, date?, action_id?);
        // A date over the cap is not a date: parsing it above failed already.
        Some(Event {
            portal: portal.clone(),
            stream: stream.unwrap_or_else(|| Stream::for_action(action_id)),
            id,
            time: to_utc(date),
            offset: date.offset(),
            action_id,
            action_type,
            product,
            location,
            target,
            entries,
            text,
            spans,
            raw,
        })
    }

    /// The general path of [`Event::from_row_text`]: serde_json over the row into loose
    /// values, every odd type tolerated or named.
    pub(super) fn from_row_serde(
        portal: Arc<PortalInfo>,
        stream: Option<Stream>,
        row: &str,
    ) -> Result<Event, EventError> {
        let mut de = serde_json::Deserializer::from_str(row);
        let fields = match RowFields::deserialize(&mut de).and_then(|f| de.end().map(|()| f)) {
            Ok(Some(f)) => f,
            Ok(None) => return Err(EventError::NotAnObject),
            Err(e) => return Err(EventError::Malformed(e.to_string())),
        };
        let id = fields.int(K_ID, "id")?.ok_or(EventError::Missing("id"))?;
        let (date_text, date) = match fields.get(K_DATE) {
            None => return Err(EventError::Missing("date")),
            Some(Loose::Str(s)) => {
                let s: &str = s;
                let t = parse_date_keep_offset(s).map_err(|problem| EventError::Invalid {
                    field: "date",
                    problem,
                })?;
                (s, t)
            }
            Some(other) => {
                return Err(EventError::Invalid {
                    field: "date",
                    problem: format!("expected a string, got {}", other.type_name()),
                });
            }
        };
        let action_id = fields
            .int(K_ACTION_ID, "actionId")?
            .ok_or(EventError::Missing("actionId"))?;
        let stream = stream.unwrap_or_else(|| Stream::for_action(action_id));
        let mut text = String::with_capacity(row.len() + row.len() / 2 + 48);
        let mut spans = [Span::NONE; FIELDS];
        for (field, key) in [
            (F_ACTION, K_ACTION),
            (F_USER, K_USER),
            (F_USER_ID, K_USER_ID),
            (F_LOGIN, K_LOGIN),
            (F_IP, K_IP),
            (F_COUNTRY, K_COUNTRY),
            (F_CITY, K_CITY),
            (F_BROWSER, K_BROWSER),
            (F_PLATFORM, K_PLATFORM),
            (F_PAGE, K_PAGE),
            (F_CONTEXT, K_CONTEXT),
        ] {
            if let Some(v) = fields.get(key) {
                let start = text.len();
                if v.push_scalar(&mut text) && text.len() > start {
                    spans[field] = Span::since(start, &text);
                } else {
                    text.truncate(start);
                }
            }
        }
        let start = text.len();
        push_capped(&mut text, date_text);
        spans[F_DATE] = Span::since(start, &text);
        let target = match fields.get(K_TARGET) {
            Some(Loose::Seq(items)) => items.iter().filter_map(Loose::scalar_string).collect(),
            Some(v) => v.scalar_string().into_iter().collect(),
            None => Vec::new(),
        };
        let entries = match fields.get(K_ENTRIES) {
            Some(Loose::Seq(items)) => items.iter().filter_map(Loose::as_i64).collect(),
            _ => Vec::new(),
        };
        let raw = push_span(&mut text, row);
        Ok(Event {
            portal,
            stream,
            id,
            time: to_utc(date),
            offset: date.offset(),
            action_id,
            action_type: fields.int(K_ACTION_TYPE, "actionType").ok().flatten(),
            product: fields.int(K_PRODUCT, "product").ok().flatten(),
            location: fields.int(K_LOCATION, "location").ok().flatten(),
            target,
            entries,
            text,
            spans,
            raw,
        })
    }
}

/// The `id` (a number or a string of digits) and `date` of a row's JSON text, each when
/// readable, without decoding the rest (the login walker reads them for every row it skims).
pub fn row_id_and_date(row: &str) -> (Option<i64>, Option<OffsetDateTime>) {
    if let Some(found) = row_id_and_date_scan(row) {
        return found;
    }
    row_id_and_date_serde(row)
}

/// [`row_id_and_date`] by [`crate::scan`]; `None` for what it leaves to serde_json.
pub(super) fn row_id_and_date_scan(row: &str) -> Option<(Option<i64>, Option<OffsetDateTime>)> {
    let mut sc = crate::scan::Scanner::new(row);
    let (mut id, mut date) = (None, None);
    let mut buf = String::new();
    sc.object(|sc, key| {
        match key {
            "id" if id.is_none() => id = Some(sc.uint()?),
            "date" if date.is_none() => {
                let (text, escaped) = sc.string_raw()?;
                let text = if escaped {
                    crate::scan::unescape_into(text, &mut buf)?;
                    buf.as_str()
                } else {
                    text
                };
                date = Some(parse_date(text).ok());
            }
            "id" | "date" => return None,
            _ => sc.skip_value(1)?,
        }
        Some(())
    })?;
    sc.at_end().then_some((id, date.flatten()))
}

pub(super) fn row_id_and_date_serde(row: &str) -> (Option<i64>, Option<OffsetDateTime>) {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = (Option<Loose<'de>>, Option<Loose<'de>>);
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let (mut id, mut date) = (None, None);
            while let Some(key) = map.next_key::<Key<'de>>()? {
                match &*key.0 {
                    "id" => id = Some(map.next_value()?),
                    "date" => date = Some(map.next_value()?),
                    _ => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok((id, date))
        }
    }
    let mut de = serde_json::Deserializer::from_str(row);
    let Ok((id, date)) = de::Deserializer::deserialize_map(&mut de, V) else {
        return (None, None);
    };
    let mut fields = RowFields {
        vals: Default::default(),
    };
    fields.vals[K_ID] = id;
    fields.vals[K_DATE] = date;
    let id = fields.int(K_ID, "id").ok().flatten();
    let date = match fields.get(K_DATE) {
        Some(Loose::Str(s)) => parse_date(s).ok(),
        _ => None,
    };
    (id, date)
}
// The row decoder: one pass of serde over the row's text into `Loose` values, strings
// borrowed wherever the JSON has no escapes. Tolerance rules (what each field accepts) are those
// of DocSpace rows seen in the wild: ints as numbers or numeric strings, strings as strings,
// numbers or booleans, null meaning absent; the last of duplicate keys wins, as in a JSON map.

const K_ID: usize = 0;
const K_DATE: usize = 1;
const K_ACTION_ID: usize = 2;
const K_ACTION: usize = 3;
const K_USER: usize = 4;
const K_USER_ID: usize = 5;
const K_LOGIN: usize = 6;
const K_IP: usize = 7;
const K_COUNTRY: usize = 8;
const K_CITY: usize = 9;
const K_BROWSER: usize = 10;
const K_PLATFORM: usize = 11;
const K_PAGE: usize = 12;
const K_ACTION_TYPE: usize = 13;
const K_PRODUCT: usize = 14;
const K_LOCATION: usize = 15;
const K_TARGET: usize = 16;
const K_ENTRIES: usize = 17;
const K_CONTEXT: usize = 18;
const KEYS: usize = 19;

fn key_index(k: &str) -> Option<usize> {
    Some(match k {
        "id" => K_ID,
        "date" => K_DATE,
        "actionId" => K_ACTION_ID,
        "action" => K_ACTION,
        "user" => K_USER,
        "userId" => K_USER_ID,
        "login" => K_LOGIN,
        "ip" => K_IP,
        "country" => K_COUNTRY,
        "city" => K_CITY,
        "browser" => K_BROWSER,
        "platform" => K_PLATFORM,
        "page" => K_PAGE,
        "actionType" => K_ACTION_TYPE,
        "product" => K_PRODUCT,
        "location" => K_LOCATION,
        "target" => K_TARGET,
        "entries" => K_ENTRIES,
        "context" => K_CONTEXT,
        _ => return None,
    })
}

/// Any JSON value, as loosely as the decoder needs it.
#[derive(Debug)]
enum Loose<'a> {
    Null,
    Bool(bool),
    I(i64),
    U(u64),
    F(f64),
    Str(Cow<'a, str>),
    Seq(Vec<Loose<'a>>),
    Map,
}

impl Loose<'_> {
    fn type_name(&self) -> &'static str {
        match self {
            Loose::Null => "null",
            Loose::Bool(_) => "a boolean",
            Loose::I(_) | Loose::U(_) | Loose::F(_) => "a number",
            Loose::Str(_) => "a string",
            Loose::Seq(_) => "an array",
            Loose::Map => "an object",
        }
    }

    /// The number as JSON writes it.
    fn number_text(&self) -> Option<String> {
        match *self {
            Loose::I(n) => Some(n.to_string()),
            Loose::U(n) => Some(n.to_string()),
            Loose::F(f) => serde_json::Number::from_f64(f).map(|n| n.to_string()),
            _ => None,
        }
    }

    fn as_i64(&self) -> Option<i64> {
        match *self {
            Loose::I(n) => Some(n),
            Loose::U(n) => i64::try_from(n).ok(),
            _ => None,
        }
    }

    /// Appends the value as text (strings capped, numbers and booleans written out); false
    /// for anything else.
    fn push_scalar(&self, out: &mut String) -> bool {
        match self {
            Loose::Str(s) => {
                push_capped(out, s);
                true
            }
            Loose::Bool(b) => {
                out.push_str(if *b { "true" } else { "false" });
                true
            }
            Loose::I(_) | Loose::U(_) | Loose::F(_) => match self.number_text() {
                Some(t) => {
                    out.push_str(&t);
                    true
                }
                None => false,
            },
            _ => false,
        }
    }

    fn scalar_string(&self) -> Option<String> {
        let mut s = String::new();
        self.push_scalar(&mut s).then_some(s)
    }
}

impl<'de> Deserialize<'de> for Loose<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Loose<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_unit<E>(self) -> Result<Loose<'de>, E> {
                Ok(Loose::Null)
            }
            fn visit_none<E>(self) -> Result<Loose<'de>, E> {
                Ok(Loose::Null)
            }
            fn visit_bool<E>(self, b: bool) -> Result<Loose<'de>, E> {
                Ok(Loose::Bool(b))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Loose<'de>, E> {
                Ok(Loose::I(n))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Loose<'de>, E> {
                Ok(Loose::U(n))
            }
            fn visit_f64<E>(self, n: f64) -> Result<Loose<'de>, E> {
                Ok(Loose::F(n))
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Loose<'de>, E> {
                Ok(Loose::Str(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Loose<'de>, E> {
                Ok(Loose::Str(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E>(self, s: String) -> Result<Loose<'de>, E> {
                Ok(Loose::Str(Cow::Owned(s)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Loose<'de>, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Loose::Seq(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Loose<'de>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Loose::Map)
            }
        }
        d.deserialize_any(V)
    }
}

/// A key, borrowed when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

/// The fields of a row the agent reads (`None` when the row is not an object).
struct RowFields<'a> {
    vals: [Option<Loose<'a>>; KEYS],
}

impl<'a> RowFields<'a> {
    fn deserialize(
        de: &mut serde_json::Deserializer<serde_json::de::StrRead<'a>>,
    ) -> Result<Option<RowFields<'a>>, serde_json::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Option<RowFields<'de>>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut vals: [Option<Loose<'de>>; KEYS] = Default::default();
                while let Some(key) = map.next_key::<Key<'de>>()? {
                    match key_index(&key.0) {
                        Some(i) => vals[i] = Some(map.next_value()?),
                        None => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(Some(RowFields { vals }))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(None)
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(None)
            }
        }
        de::Deserializer::deserialize_any(de, V)
    }

    /// The value of a key; JSON `null` counts as absent.
    fn get(&self, k: usize) -> Option<&Loose<'a>> {
        match &self.vals[k] {
            None | Some(Loose::Null) => None,
            Some(v) => Some(v),
        }
    }

    /// An integer field that may arrive as a number or a numeric string.
    fn int(&self, k: usize, field: &'static str) -> Result<Option<i64>, EventError> {
        let Some(v) = self.get(k) else {
            return Ok(None);
        };
        match v {
            Loose::I(_) | Loose::U(_) | Loose::F(_) => {
                v.as_i64().map(Some).ok_or_else(|| EventError::Invalid {
                    field,
                    problem: format!("{} is not an integer", v.number_text().unwrap_or_default()),
                })
            }
            Loose::Str(s) => s
                .trim()
                .parse::<i64>()
                .map(Some)
                .map_err(|_| EventError::Invalid {
                    field,
                    problem: format!("{s:?} is not an integer"),
                }),
            other => Err(EventError::Invalid {
                field,
                problem: format!("expected an integer, got {}", other.type_name()),
            }),
        }
    }
}

/// The JSON text without the whitespace between tokens (a pretty-printed row must still be
/// one line in the `json` format).
pub fn compact_json(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut in_str = false;
    let mut esc = false;
    for &c in b {
        if in_str {
            out.push(c);
            if esc {
                esc = false;
            } else if c == b'\\' {
                esc = true;
            } else if c == b'"' {
                in_str = false;
            }
        } else if !matches!(c, b' ' | b'\n' | b'\r' | b'\t') {
            if c == b'"' {
                in_str = true;
            }
            out.push(c);
        }
    }
    // Only ASCII whitespace outside strings was removed: still UTF-8.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Appends `s`, cut to [`MAX_FIELD_BYTES`] at a char boundary and marked when longer.
fn push_capped(out: &mut String, s: &str) {
    if s.len() <= MAX_FIELD_BYTES {
        out.push_str(s);
        return;
    }
    let mut end = MAX_FIELD_BYTES - TRUNCATED_MARK.len();
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    out.push_str(&s[..end]);
    out.push_str(TRUNCATED_MARK);
}

/// Caps what was appended to `text` since `start` as [`push_capped`] would have.
fn cap_from(text: &mut String, start: usize) {
    if text.len() - start <= MAX_FIELD_BYTES {
        return;
    }
    let mut end = start + MAX_FIELD_BYTES - TRUNCATED_MARK.len();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(TRUNCATED_MARK);
}

/// One string of a row's `target`, capped (`None`: not a string, left to serde_json).
fn scan_capped(sc: &mut crate::scan::Scanner<'_>) -> Option<String> {
    let mut s = String::new();
    sc.string_into(&mut s)?;
    cap_from(&mut s, 0);
    Some(s)
}

/// Cuts a string to [`MAX_FIELD_BYTES`] at a char boundary and marks the cut.
pub fn cap(s: &str) -> String {
    if s.len() <= MAX_FIELD_BYTES {
        return s.to_owned();
    }
    let mut end = MAX_FIELD_BYTES - TRUNCATED_MARK.len();
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = String::with_capacity(MAX_FIELD_BYTES);
    out.push_str(&s[..end]);
    out.push_str(TRUNCATED_MARK);
    out
}

#[cfg(test)]
mod tests;
