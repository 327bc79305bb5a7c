//! Transform: pure encoders from [`Event`] to bytes (ECS, CEF, LEEF, OCSF, raw JSON), and the
//! [`Format`] setting that picks one.
//!
//! Invariants: nothing here does IO, returns an error on any input or panics; every encoder
//! writes exactly one record per event with no raw CR or LF in it (JSON through serde, CEF with
//! its escaping), so an attacker-typed login name can never split or forge a record. Framing
//! (newlines, octet counts, JSON arrays) is the sink's job.

pub mod alert;
pub mod cef;
pub mod ecs;
pub mod json;
pub mod leef;
pub mod ocsf;

#[cfg(test)]
mod differential;
#[cfg(test)]
mod reference;

use std::fmt;
use std::net::IpAddr;

use bytes::BytesMut;
use time::OffsetDateTime;

use crate::event::{Event, Stream};

/// Output format of a sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// ECS 9.x JSON.
    Ecs,
    /// ArcSight CEF.
    Cef,
    /// The DocSpace row plus `portal` and `stream`.
    Json,
    /// IBM QRadar LEEF 2.0.
    Leef,
    /// OCSF 1.5.0 JSON.
    Ocsf,
}

impl Format {
    /// Parses `ecs` / `cef` / `json` / `leef` / `ocsf`.
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "ecs" => Some(Format::Ecs),
            "cef" => Some(Format::Cef),
            "json" => Some(Format::Json),
            "leef" => Some(Format::Leef),
            "ocsf" => Some(Format::Ocsf),
            _ => None,
        }
    }
}

/// The ECS version, as a literal for `concat!`.
macro_rules! ecs_version {
    () => {
        "9.4.0"
    };
}
pub(crate) use ecs_version;

/// The ECS version the output claims (the schema in shared/ecs/ecs_flat.yml).
pub const ECS_VERSION: &str = ecs_version!();

/// Encodes one event in `format`, appending to `out` (no trailing newline).
pub fn encode(format: Format, ev: &Event, out: &mut Vec<u8>) {
    match format {
        Format::Ecs => ecs::encode(ev, out),
        Format::Cef => cef::encode(ev, out),
        Format::Json => json::encode(ev, out),
        Format::Leef => leef::encode(ev, out),
        Format::Ocsf => ocsf::encode(ev, out),
    }
}

/// Encodes one event in `format` into any [`Output`], such as the syslog sink's buffer right
/// after the record's header. CEF, LEEF, ECS and OCSF write in place; JSON, whose serde encoder wants
/// a `Vec`, is encoded into `scratch` (cleared first) and copied.
pub fn encode_into<O: Output + ?Sized>(
    format: Format,
    ev: &Event,
    out: &mut O,
    scratch: &mut Vec<u8>,
) {
    match format {
        Format::Cef => cef::encode(ev, out),
        Format::Leef => leef::encode(ev, out),
        Format::Ecs => ecs::encode(ev, out),
        Format::Ocsf => ocsf::encode(ev, out),
        Format::Json => {
            scratch.clear();
            encode(format, ev, scratch);
            out.put(scratch);
        }
    }
}

/// A growable byte buffer the byte encoders append to: a `Vec<u8>`, or a `BytesMut` so that a
/// syslog record is encoded in place after its header.
pub trait Output {
    /// Appends `bytes`.
    fn put(&mut self, bytes: &[u8]);
    /// Everything written so far.
    fn written(&self) -> &[u8];
    /// Keeps the first `len` bytes.
    fn cut(&mut self, len: usize);
}

impl Output for Vec<u8> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }

    fn written(&self) -> &[u8] {
        self
    }

    fn cut(&mut self, len: usize) {
        self.truncate(len);
    }
}

impl Output for BytesMut {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }

    fn written(&self) -> &[u8] {
        self
    }

    fn cut(&mut self, len: usize) {
        self.truncate(len);
    }
}

/// The [`Event`] fields the CEF and LEEF encoders read, borrowed once per event through
/// `Event`'s accessors ([`Fields::of`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fields<'a> {
    pub stream: Stream,
    pub id: i64,
    pub time: OffsetDateTime,
    pub action_id: i64,
    pub portal_name: &'a str,
    pub action_text: Option<&'a str>,
    pub user: Option<&'a str>,
    /// The actor's id, never DocSpace's Guest placeholder ([`Event::actor_id`]).
    pub user_id: Option<&'a str>,
    pub login: Option<&'a str>,
    pub country: Option<&'a str>,
    pub city: Option<&'a str>,
    pub browser: Option<&'a str>,
    pub platform: Option<&'a str>,
    pub page: Option<&'a str>,
    pub action_type: Option<i64>,
    pub product: Option<i64>,
    pub location: Option<i64>,
    pub target: &'a [String],
    pub entries: &'a [i64],
    pub context: Option<&'a str>,
}

impl Fields<'_> {
    pub fn of(ev: &Event) -> Fields<'_> {
        Fields {
            stream: ev.stream,
            id: ev.id,
            time: ev.time,
            action_id: ev.action_id,
            portal_name: &ev.portal.name,
            action_text: ev.action_text(),
            user: ev.user(),
            user_id: ev.actor_id(),
            login: ev.login(),
            country: ev.country(),
            city: ev.city(),
            browser: ev.browser(),
            platform: ev.platform(),
            page: ev.page(),
            action_type: ev.action_type,
            product: ev.product,
            location: ev.location,
            target: &ev.target,
            entries: &ev.entries,
            context: ev.context(),
        }
    }

    /// What the encoders write for the action, or `None` for a code this build does not know
    /// (the encoders then write `Action<code>`, as `Event::action_name` does, without
    /// allocating).
    pub fn action(&self) -> Option<&'static ActionNames> {
        action(self.action_id)
    }
}

/// What the encoders write for a known action code, looked up once per process.
#[derive(Debug)]
pub(crate) struct ActionNames {
    /// The `MessageAction` member name ([`crate::actions::lookup`]) as a JSON string.
    pub json_name: Box<[u8]>,
    /// The kebab-case name ([`crate::actions::kebab`]) as a JSON string.
    pub json_kebab: Box<[u8]>,
    /// CEF: `<code>|<name>|` (header fields).
    pub cef_head: Box<[u8]>,
    /// CEF: ` act=<name>`.
    pub cef_act: Box<[u8]>,
    /// LEEF: `^action=<name>`.
    pub leef: Box<[u8]>,
}

/// The names of a known action code, from a table indexed by the code itself (the codes are
/// dense enough: a few thousand slots for a few hundred actions) instead of a binary search
/// per event.
#[inline]
pub(crate) fn action(code: i64) -> Option<&'static ActionNames> {
    struct Table {
        first: i64,
        /// Per code from `first`: an index into `names`, or `u16::MAX` for an unknown code.
        slots: Box<[u16]>,
        names: Box<[ActionNames]>,
    }
    static TABLE: std::sync::OnceLock<Table> = std::sync::OnceLock::new();
    let t = TABLE.get_or_init(|| {
        let all = crate::actions::ACTIONS;
        let first = all.iter().map(|a| i64::from(a.code)).min().unwrap_or(0);
        let last = all.iter().map(|a| i64::from(a.code)).max().unwrap_or(-1);
        let mut slots = vec![u16::MAX; usize::try_from(last - first + 1).unwrap_or(0)];
        let mut names = Vec::with_capacity(all.len());
        for a in all {
            let code = i64::from(a.code);
            if let (Some(n), Ok(at), Some(kebab)) = (
                u16::try_from(names.len()).ok().filter(|n| *n != u16::MAX),
                usize::try_from(code - first),
                crate::actions::kebab(code),
            ) {
                slots[at] = n;
                let json = |v: &str| {
                    let mut out = Vec::new();
                    put_json_str(&mut out, v);
                    out.into_boxed_slice()
                };
                let (cef_head, cef_act) = cef::action_text(code, a.name);
                names.push(ActionNames {
                    json_name: json(a.name),
                    json_kebab: json(kebab),
                    cef_head: cef_head.into_boxed_slice(),
                    cef_act: cef_act.into_boxed_slice(),
                    leef: leef::action_text(a.name).into_boxed_slice(),
                });
            }
        }
        Table {
            first,
            slots: slots.into_boxed_slice(),
            names: names.into_boxed_slice(),
        }
    });
    let at = usize::try_from(code.checked_sub(t.first)?).ok()?;
    t.names.get(usize::from(*t.slots.get(at)?))
}

/// The text each encoder writes for a portal, rendered once per portal instead of escaping the
/// same name and host again for every event.
#[derive(Debug)]
pub(crate) struct PortalText {
    /// ECS: `,"portal":…,"portal_url":…`.
    pub ecs_portal: Box<[u8]>,
    /// ECS: `,"observer":{…},"organization":{…}`.
    pub ecs_observer: Box<[u8]>,
    /// ECS: `,"unique_id":"<portal key>:`, the start of `docspace.unique_id` (the stream, `:`,
    /// the id and the closing quote follow).
    pub ecs_unique_id: Box<[u8]>,
    /// ECS: `,"labels":{…}` of the portal's labels (empty when it has none).
    pub ecs_labels: Box<[u8]>,
    /// CEF: ` deviceExternalId=… dvchost=…`, then ` labels.KEY=…` for each label.
    pub cef: Box<[u8]>,
    /// LEEF: `^portal=…^portalHost=…`, then `^labels.KEY=…` for each label.
    pub leef: Box<[u8]>,
}

/// Calls `f` with the rendered text of `portal`. Each thread keeps the text of the last portal
/// it saw, with a reference to that portal, so the allocation it compares by address stays
/// alive and cannot be reused by another portal.
#[inline]
pub(crate) fn with_portal<R>(
    portal: &std::sync::Arc<crate::event::PortalInfo>,
    f: impl FnOnce(&PortalText) -> R,
) -> R {
    type Cached = Option<(
        std::sync::Arc<crate::event::PortalInfo>,
        std::rc::Rc<PortalText>,
    )>;
    thread_local! {
        static LAST: std::cell::RefCell<Cached> = const { std::cell::RefCell::new(None) };
    }
    let text = LAST.with(|last| {
        let mut last = last.borrow_mut();
        match &*last {
            Some((p, text)) if std::sync::Arc::ptr_eq(p, portal) => text.clone(),
            _ => {
                let text = std::rc::Rc::new(PortalText {
                    ecs_portal: ecs::portal_text(portal).into_boxed_slice(),
                    ecs_observer: ecs::observer_text(portal).into_boxed_slice(),
                    ecs_unique_id: ecs::unique_id_text(portal).into_boxed_slice(),
                    ecs_labels: ecs::labels_text(portal).into_boxed_slice(),
                    cef: cef::portal_text(portal).into_boxed_slice(),
                    leef: leef::portal_text(portal).into_boxed_slice(),
                });
                *last = Some((portal.clone(), text.clone()));
                text
            }
        }
    });
    f(&text)
}

/// U+FFFD, which replaces control characters.
pub(crate) const REPLACEMENT: &[u8] = "\u{FFFD}".as_bytes();

/// The bytes an escaping looks at: the C0 control characters (TAB only when asked), DEL, up
/// to two printable ASCII characters and some lead bytes of non-ASCII characters. With 0xC2,
/// the lead byte of the C1 controls (`0xC2 0x80..=0x9F`, U+0080–U+009F), and TAB, CR and LF,
/// these cover the characters `char::is_control` names.
///
/// Held as a byte table, and as a test of eight bytes at once that never misses a marked byte
/// (it may flag a word that holds none, which then goes byte by byte): most text has nothing to
/// escape, and skipping it a word at a time is what makes the encoders cheap.
pub(crate) struct Marks {
    table: [bool; 256],
    /// The two ASCII characters (the same one twice when there is one).
    ascii: [u8; 2],
}

impl Marks {
    /// Marks the C0 controls (TAB only if `tab`), DEL, `ascii` and `leads`.
    pub(crate) const fn new(ascii: [u8; 2], tab: bool, leads: &[u8]) -> Marks {
        let mut table = [false; 256];
        let mut b = 0;
        while b < 0x20 {
            table[b] = tab || b != b'\t' as usize;
            b += 1;
        }
        table[0x7f] = true;
        // The word test finds printable ASCII by value and everything else by range.
        assert!(ascii[0] > 0x20 && ascii[0] < 0x7f && ascii[1] > 0x20 && ascii[1] < 0x7f);
        // `replace_marked` fills short words with `A`.
        assert!(ascii[0] != b'A' && ascii[1] != b'A');
        table[ascii[0] as usize] = true;
        table[ascii[1] as usize] = true;
        let mut k = 0;
        while k < leads.len() {
            assert!(leads[k] >= 0x80);
            table[leads[k] as usize] = true;
            k += 1;
        }
        Marks { table, ascii }
    }

    /// Whether the eight bytes of `w` may hold a marked byte: one below 0x20, DEL, one of the
    /// ASCII characters, or any byte from 0x80 (every lead byte is one).
    #[inline]
    fn may_hold(&self, w: u64) -> bool {
        const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
        const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
        // Nonzero iff some byte of `x` is below `n` (n <= 0x80); for n = 1, iff one is zero.
        let below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGH;
        let equal = |c: u8| below(w ^ (ONES * u64::from(c)), 1);
        (below(w, 0x20) | equal(0x7f) | equal(self.ascii[0]) | equal(self.ascii[1]) | (w & HIGH))
            != 0
    }

    #[inline]
    fn marks(&self, b: u8) -> bool {
        self.table[usize::from(b)]
    }
}

/// Whether `v[i]` (0xC2) starts a C1 control character.
#[inline]
pub(crate) fn is_c1(v: &[u8], i: usize) -> bool {
    matches!(v.get(i + 1), Some(0x80..=0x9f))
}

/// Copies `v` to `out`, each run of bytes that `marks` does not mark at once. For a marked byte
/// at `i`, `rule(v, i)` gives its replacement and how many bytes that replaces, or `None` to keep
/// the byte. The rules replace whole characters, so UTF-8 stays UTF-8.
#[inline]
pub(crate) fn replace_marked<O: Output + ?Sized>(
    out: &mut O,
    v: &[u8],
    marks: &Marks,
    rule: impl Fn(&[u8], usize) -> Option<(&'static [u8], usize)>,
) {
    let mut run = 0;
    let mut i = 0;
    while i < v.len() {
        if let Some(word) = v[i..].first_chunk::<8>() {
            if !marks.may_hold(u64::from_ne_bytes(*word)) {
                i += 8;
                continue;
            }
        } else if let Some(last) = v.last_chunk::<8>() {
            if !marks.may_hold(u64::from_ne_bytes(*last)) {
                // Fewer than eight bytes left, and the last eight bytes (some of them looked
                // at already) hold nothing marked.
                break;
            }
        } else if i == 0 {
            // Fewer than eight bytes in all; the rest of the word filled with `A`, which no
            // escaping marks.
            const FILL: u64 = u64::from_ne_bytes([b'A'; 8]);
            let w = load_short(v);
            let keep = low_bytes(v.len());
            if !marks.may_hold((w & keep) | (FILL & !keep)) {
                break;
            }
        }
        let end = (i + 8).min(v.len());
        match v[i..end].iter().position(|&b| marks.marks(b)) {
            None => i = end,
            Some(n) => {
                i += n;
                match rule(v, i) {
                    Some((replacement, len)) => {
                        out.put(&v[run..i]);
                        out.put(replacement);
                        i += len;
                        run = i;
                    }
                    None => i += 1,
                }
            }
        }
    }
    out.put(&v[run..]);
}

/// What a JSON string needs escaped, as serde_json escapes it: `"` and `\` by a backslash, the
/// C0 controls as `\b`, `\t`, `\n`, `\f`, `\r` or `\u00XX` (lowercase hex); 0 for a byte that
/// is copied as it is (DEL and everything from 0x80 included, as serde_json copies them; the
/// line separators that start with 0xC2 and 0xE2 are escaped apart, see [`separator_escape`]).
static JSON_ESCAPES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = b'u';
        b += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0a] = b'n';
    t[0x0c] = b'f';
    t[0x0d] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

/// The bytes of `w` (read little-endian) that JSON escapes (below 0x20, `"` or `\`) or that
/// may start a line separator (0xC2, 0xE2): the high bit of each such byte, exactly (no carry
/// crosses a byte). Other bytes from 0x80 are never marked, so most UTF-8 text is skipped a
/// word at a time.
#[inline]
fn json_marks(w: u64) -> u64 {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const LOW7: u64 = u64::from_ne_bytes([0x7f; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    // High bit set iff the byte is at least 0x20.
    let at_least_space = ((w & LOW7) + ONES * 0x60) | w;
    // High bit set iff the byte of `y` is zero.
    let zero = |y: u64| !(((y & LOW7) + LOW7) | y);
    let equal = |c: u8| zero(w ^ (ONES * u64::from(c)));
    (!at_least_space | equal(b'"') | equal(b'\\') | equal(0xc2) | equal(0xe2)) & HIGH
}

/// The escape of the line separator that starts at `v[i]`, and its length in bytes: NEL
/// (U+0085, `C2 85`), U+2028 and U+2029 (`E2 80 A8`/`A9`). JSON allows them raw in strings,
/// but JavaScript before ES2019 and line readers such as Python's `str.splitlines` end a line
/// there, so one record would read as two.
#[inline]
pub(crate) fn separator_escape(v: &[u8], i: usize) -> Option<(&'static [u8], usize)> {
    match v.get(i..)? {
        [0xc2, 0x85, ..] => Some((b"\\u0085", 2)),
        [0xe2, 0x80, 0xa8, ..] => Some((b"\\u2028", 3)),
        [0xe2, 0x80, 0xa9, ..] => Some((b"\\u2029", 3)),
        _ => None,
    }
}

/// Escapes every line separator ([`separator_escape`]) in what was written to `out` after
/// `start`, which is JSON text: they can only lie inside its strings (JSON whitespace is space,
/// tab, CR and LF), where `\uXXXX` means the same character.
pub(crate) fn escape_separators_from(out: &mut Vec<u8>, start: usize) {
    let Some(first) = out[start..]
        .iter()
        .position(|&b| b == 0xc2 || b == 0xe2)
        .map(|p| start + p)
    else {
        return;
    };
    let tail = out.split_off(first);
    let mut run = 0;
    let mut i = 0;
    while i < tail.len() {
        match separator_escape(&tail, i) {
            Some((esc, len)) => {
                out.extend_from_slice(&tail[run..i]);
                out.extend_from_slice(esc);
                i += len;
                run = i;
            }
            None => i += 1,
        }
    }
    out.extend_from_slice(&tail[run..]);
}

/// The next byte at or after `i` that JSON escapes, if any, eight bytes at a time.
#[inline(always)]
fn next_json_escape(v: &[u8], mut i: usize) -> Option<usize> {
    let n = v.len();
    while let Some(word) = v.get(i..).and_then(<[u8]>::first_chunk::<8>) {
        let m = json_marks(u64::from_le_bytes(*word));
        if m != 0 {
            return Some(i + (m.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    if i >= n {
        return None;
    }
    let m = if let Some(last) = v.last_chunk::<8>() {
        // The last eight bytes, of which the first `skip` were looked at already.
        let skip = i - (n - 8);
        json_marks(u64::from_le_bytes(*last)) >> (8 * skip)
    } else {
        // Fewer than eight bytes in all.
        let rest = &v[i..];
        json_marks(load_short(rest)) & low_bytes(rest.len())
    };
    (m != 0).then(|| i + (m.trailing_zeros() / 8) as usize)
}

/// The 1 to 7 bytes of `v` as the low bytes of a little-endian word, without a copy loop or a
/// `memcpy` call: two overlapping loads, whose common bytes agree. The high bytes are
/// meaningless (callers mask them with [`low_bytes`]).
#[inline(always)]
fn load_short(v: &[u8]) -> u64 {
    let n = v.len();
    debug_assert!((1..8).contains(&n));
    if let (Some(lo), Some(hi)) = (v.first_chunk::<4>(), v.last_chunk::<4>()) {
        u64::from(u32::from_le_bytes(*lo)) | (u64::from(u32::from_le_bytes(*hi)) << (8 * (n - 4)))
    } else if let (Some(&a), Some(&b), Some(&c)) = (v.first(), v.get(n / 2), v.last()) {
        u64::from(a) | (u64::from(b) << (8 * (n / 2))) | (u64::from(c) << (8 * (n - 1)))
    } else {
        0
    }
}

/// A mask of the low `n` bytes of a word (`n < 8`).
#[inline(always)]
fn low_bytes(n: usize) -> u64 {
    (1u64 << (8 * n)) - 1
}

/// `key` (with its comma and colon) and the value, when present and not empty (unset values
/// are omitted, never `null`): how the JSON encoders (ECS, OCSF) write an optional string.
#[inline]
pub(crate) fn opt_str<O: Output + ?Sized>(out: &mut O, key: &[u8], v: Option<&str>) {
    if let Some(v) = v.filter(|v| !v.is_empty()) {
        out.put(key);
        put_json_str(out, v);
    }
}

/// `key` (with its comma and colon) and `items` as a JSON array of strings.
pub(crate) fn put_str_array<O: Output + ?Sized>(out: &mut O, key: &[u8], items: &[String]) {
    out.put(key);
    out.put(b"[");
    for (i, t) in items.iter().enumerate() {
        if i > 0 {
            out.put(b",");
        }
        put_json_str(out, t);
    }
    out.put(b"]");
}

/// Appends `v` as a JSON string, quotes included, exactly as `serde_json::to_writer` writes a
/// `&str`, except that the line separators NEL, U+2028 and U+2029 are escaped as well
/// (`\u0085`, `\u2028`, `\u2029`; see [`separator_escape`]). Runs of bytes that need no
/// escaping are copied at once.
pub(crate) fn put_json_str<O: Output + ?Sized>(out: &mut O, v: &str) {
    let v = v.as_bytes();
    out.put(b"\"");
    let mut run = 0;
    let mut from = 0;
    while let Some(at) = next_json_escape(v, from) {
        let b = v[at];
        if matches!(b, 0xc2 | 0xe2) {
            // Marked as a lead byte that may start a line separator.
            match separator_escape(v, at) {
                Some((esc, len)) => {
                    out.put(&v[run..at]);
                    out.put(esc);
                    run = at + len;
                    from = run;
                }
                None => from = at + 1,
            }
            continue;
        }
        out.put(&v[run..at]);
        match JSON_ESCAPES[usize::from(b)] {
            b'u' => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.put(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(b >> 4)],
                    HEX[usize::from(b & 0xf)],
                ]);
            }
            c => out.put(&[b'\\', c]),
        }
        run = at + 1;
        from = run;
    }
    out.put(&v[run..]);
    out.put(b"\"");
}

/// Cuts what was written to `out` after `start` (UTF-8) to `max - 3` characters and appends
/// `...`, when it has more than `max` characters.
pub(crate) fn cut_written<O: Output + ?Sized>(out: &mut O, start: usize, max: usize) {
    let written = &out.written()[start..];
    // Characters are the bytes that do not continue one (0b10xx_xxxx).
    let starts = || {
        written
            .iter()
            .enumerate()
            .filter(|(_, b)| (**b & 0xc0) != 0x80)
    };
    if starts().count() <= max {
        return;
    }
    let end = starts()
        .nth(max.saturating_sub(3))
        .map_or(written.len(), |(i, _)| i);
    out.cut(start + end);
    out.put(b"...");
}

/// Appends `v` as `Display` writes it (an IP address), without a `String` in between.
pub(crate) fn put_display<O: Output + ?Sized>(out: &mut O, v: impl fmt::Display) {
    struct Adapter<'o, O: ?Sized>(&'o mut O);
    impl<O: Output + ?Sized> fmt::Write for Adapter<'_, O> {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            self.0.put(s.as_bytes());
            Ok(())
        }
    }
    // Writing into an `Output` cannot fail.
    let _ = fmt::write(&mut Adapter(out), format_args!("{v}"));
}

/// Appends an instant in UTC as `YYYY-MM-DDTHH:MM:SS.mmmZ`, by the agent's one timestamp
/// writer ([`crate::event::timestamp`]), into any [`Output`].
pub(crate) fn put_utc_millis<O: Output + ?Sized>(out: &mut O, t: OffsetDateTime) {
    out.put(crate::event::timestamp(t, crate::event::Precision::Millis).as_bytes());
}

/// The event's `ip` when it is a valid address, as [`Event::valid_ip`] reads it: a dotted
/// quad by a direct parse (the common case), anything else through `IpAddr`'s parser.
#[inline]
pub(crate) fn valid_ip(ev: &Event) -> Option<IpAddr> {
    let s = ev.ip()?;
    match parse_ipv4(s.as_bytes()) {
        Some(v4) => Some(IpAddr::V4(v4)),
        None => s.parse().ok(),
    }
}

/// `a.b.c.d` with each part 0–255 in one to three ASCII digits and no leading zero: every
/// string it accepts, `Ipv4Addr`'s parser accepts as the same address (what it rejects goes to
/// that parser).
#[inline]
fn parse_ipv4(b: &[u8]) -> Option<std::net::Ipv4Addr> {
    if b.len() > 15 {
        return None;
    }
    let mut octets = [0u8; 4];
    let mut i = 0;
    for (k, octet) in octets.iter_mut().enumerate() {
        if k > 0 {
            if b.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
        let start = i;
        let mut v = 0u32;
        while let Some(d) = b.get(i).filter(|d| d.is_ascii_digit() && i - start < 3) {
            v = v * 10 + u32::from(d - b'0');
            i += 1;
        }
        if i == start || (i - start > 1 && b[start] == b'0') {
            return None;
        }
        *octet = u8::try_from(v).ok()?;
    }
    (i == b.len()).then_some(std::net::Ipv4Addr::from(octets))
}

/// Epoch milliseconds of `t`, as [`Event::epoch_millis`] computes them (nanoseconds divided
/// by a million, rounded toward zero), without a 128-bit division.
#[inline]
pub(crate) fn epoch_millis(t: OffsetDateTime) -> i64 {
    let secs = t.unix_timestamp();
    let nanos = t.nanosecond();
    let millis = secs * 1000 + i64::from(nanos / 1_000_000);
    // Before 1970 the division rounds toward zero, up from the floor.
    if secs < 0 && !nanos.is_multiple_of(1_000_000) {
        millis + 1
    } else {
        millis
    }
}

/// Appends an address as its `Display` writes it: an IPv4 address as `a.b.c.d` with itoa (the
/// formatting machinery costs more than the rest of a CEF record's escaping), IPv6 through
/// `Display` itself.
pub(crate) fn put_ip<O: Output + ?Sized>(out: &mut O, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            let mut num = itoa::Buffer::new();
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.put(b".");
                }
                out.put(num.format(octet).as_bytes());
            }
        }
        IpAddr::V6(v6) => put_display(out, v6),
    }
}

/// `s` cut to `max - 3` characters when it has more than `max` characters, and whether it was
/// cut (the caller then appends `...`). Counts characters only when the byte length says that
/// `s` may be too long: a string has at least as many bytes as characters.
#[inline(always)]
pub(crate) fn limit(s: &str, max: usize) -> (&str, bool) {
    if s.len() <= max {
        return (s, false);
    }
    let keep = max.saturating_sub(3);
    match s.char_indices().nth(keep) {
        Some((end, _)) if keep + s[end..].chars().count() > max => (&s[..end], true),
        _ => (s, false),
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Events decoded from the DocSpace fixtures in tests/fixtures.
    use std::sync::Arc;

    use crate::event::{Event, PortalInfo, Stream};

    pub fn load(name: &str, stream: Stream) -> Vec<Event> {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).expect("fixture exists");
        let v: serde_json::Value = serde_json::from_str(&text).expect("fixture is JSON");
        let portal = Arc::new(PortalInfo::new("main", "https://docspace.example.com"));
        v["response"]
            .as_array()
            .expect("envelope")
            .iter()
            .map(|row| Event::from_json(portal.clone(), Some(stream), row.clone()).expect("row"))
            .collect()
    }

    pub fn all() -> Vec<Event> {
        let mut v = load("login-filter.json", Stream::Login);
        v.extend(load("events-filter.json", Stream::Audit));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_word_test_never_misses_a_marked_byte() {
        let marks = [
            Marks::new([b'\\', b'='], false, &[0xc2]),
            Marks::new([b'^', b'^'], true, &[0xc2, 0xe2]),
        ];
        for m in &marks {
            for b in 0..=255u8 {
                for at in 0..8 {
                    let mut word = *b"abcdefgh";
                    word[at] = b;
                    let w = u64::from_ne_bytes(word);
                    assert!(!m.marks(b) || m.may_hold(w), "byte {b:#x} at {at}");
                }
            }
            assert!(!m.may_hold(u64::from_ne_bytes(*b"plain ok")));
        }
    }

    #[test]
    fn the_json_word_test_marks_exactly_the_bytes_to_escape() {
        // Every pair of neighbouring bytes at every place: no carry or borrow from one byte
        // can mark or hide its neighbour.
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                for at in 0..7 {
                    let mut word = [0xffu8; 8];
                    word[at] = a;
                    word[at + 1] = b;
                    let marked =
                        |c: u8| JSON_ESCAPES[usize::from(c)] != 0 || c == 0xc2 || c == 0xe2;
                    let want = word
                        .iter()
                        .enumerate()
                        .fold(0u64, |m, (k, &c)| m | (u64::from(marked(c)) << (8 * k + 7)));
                    assert_eq!(json_marks(u64::from_le_bytes(word)), want, "{word:x?}");
                }
            }
        }
    }

    #[test]
    fn the_action_table_agrees_with_the_actions_module() {
        let codes = crate::actions::ACTIONS.iter().map(|a| i64::from(a.code));
        for code in codes.chain([-1, 0, 999, 1999, 9920, 65_535, i64::MIN, i64::MAX]) {
            for c in [code.wrapping_sub(1), code, code.wrapping_add(1)] {
                let json = |v: &str| serde_json::to_vec(v).expect("serialises");
                let got = action(c).map(|a| (a.json_name.to_vec(), a.json_kebab.to_vec()));
                let want = crate::actions::lookup(c).map(|a| a.name).map(json);
                assert_eq!(got.as_ref().map(|g| &g.0), want.as_ref(), "{c}");
                let want = crate::actions::kebab(c).map(json);
                assert_eq!(got.as_ref().map(|g| &g.1), want.as_ref(), "{c}");
            }
        }
    }

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        for ip in [
            "0.0.0.0",
            "192.0.2.66",
            "255.255.255.255",
            "2001:db8::1",
            "::ffff:1.2.3.4",
        ] {
            let ip: IpAddr = ip.parse().expect("an address");
            let mut out = Vec::new();
            put_ip(&mut out, ip);
            assert_eq!(out, ip.to_string().as_bytes());
        }
    }
}
