//! The encoders as they were before the encoders were tuned for CPU cost (issue 8), kept as
//! the reference that the differential tests compare the tuned ones against, byte for byte.
//! What the output says has changed since in both alike (issue 17: the Guest placeholder out
//! of the user id fields, a cut IPv6 address kept in CEF and LEEF, line separators escaped,
//! `docspace.unique_id`), in the plain style of the rest of this module.
#![allow(dead_code)]

pub mod cef;
pub mod ecs;
pub mod leef;

use std::fmt;
use std::net::IpAddr;

use time::OffsetDateTime;

pub(crate) use super::{ECS_VERSION, Output};
use crate::event::{Event, Stream};
use crate::transform::Format;

/// Encodes one event in `format`, appending to `out` (no trailing newline).
pub fn encode(format: Format, ev: &Event, out: &mut Vec<u8>) {
    match format {
        Format::Ecs => ecs::encode(ev, out),
        Format::Cef => cef::encode(ev, out),
        // The json encoder was not rewritten: it is its own reference.
        Format::Json => crate::transform::json::encode(ev, out),
        Format::Leef => leef::encode(ev, out),
        // OCSF came after the tuning: it is its own reference.
        Format::Ocsf => crate::transform::ocsf::encode(ev, out),
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
    pub portal_host: &'a str,
    pub action_text: Option<&'a str>,
    pub user: Option<&'a str>,
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
            portal_host: &ev.portal.host,
            action_text: ev.action_text(),
            user: ev.user(),
            user_id: ev.user_id().filter(|u| !crate::event::is_guest_id(u)),
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

    /// The `MessageAction` member name, or `None` for a code this build does not know (the
    /// encoders then write `Action<code>`, as `Event::action_name` does, without allocating).
    pub fn action_name(&self) -> Option<&'static str> {
        crate::actions::lookup(self.action_id).map(|a| a.name)
    }
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
        if let Some(word) = v[i..].first_chunk::<8>()
            && !marks.may_hold(u64::from_ne_bytes(*word))
        {
            i += 8;
            continue;
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
