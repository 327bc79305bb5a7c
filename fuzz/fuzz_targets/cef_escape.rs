//! Fuzz target `cef_escape`: arbitrary strings → `cef::escape_value` and `cef::header`.
//!
//! Input: one byte of header length limit, then the value (lossy UTF-8).
//!
//! The invariant checked is exact: unescaping the output per the CEF rules gives back the
//! documented sanitising of the input, and the output is a well-formed escaped string.
//! - `escape_value(s)`: no CR, LF or other control character except TAB; every `\` starts a
//!   pair `\\`, `\=` or `\n` (so every `=` is preceded by an odd run of backslashes and the
//!   output never ends in a dangling one); `\` `=` `\n` unescaping gives `sanitised(s)`, where
//!   CRLF, CR, NEL, U+2028 and U+2029 become LF and every other control character except TAB
//!   and LF becomes U+FFFD (tests/it/support `cef_sanitised`);
//! - `header(s, max)`: no CR, LF or other control character except TAB; every `\` starts `\\` or
//!   `\|` (so every `|` is escaped); unescaping gives the input cut to `max` characters (ending
//!   in `...` when cut) with CR, LF, NEL, U+2028 and U+2029 as spaces and other control
//!   characters as U+FFFD;
//! - neither holds NEL, U+2028 or U+2029 (issue 17: line readers split on them).

#![no_main]

use docspace_siem::transform::cef;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&max, rest)) = data.split_first() else {
        return;
    };
    let s = String::from_utf8_lossy(rest);

    let mut ext = String::new();
    cef::escape_value(&mut ext, &s);
    let bad = ext
        .chars()
        .find(|c| (c.is_control() && *c != '\t') || is_separator(*c));
    assert!(bad.is_none(), "extension value holds {bad:?}: {ext:?}");
    let back = unescape(&ext, |c| match c {
        '\\' | '=' => Some(c),
        'n' => Some('\n'),
        _ => None,
    })
    .unwrap_or_else(|e| panic!("extension value {ext:?}: {e}"));
    assert!(!raw_outside_escapes(&ext, '='), "unescaped = in {ext:?}");
    assert_eq!(back, sanitised_ext(&s), "extension round trip of {s:?}");

    // 3 is the smallest limit that leaves room for the `...` marker.
    let max = usize::from(max).max(3);
    let mut head = String::new();
    cef::header(&mut head, &s, max);
    let bad = head
        .chars()
        .find(|c| (c.is_control() && *c != '\t') || is_separator(*c));
    assert!(bad.is_none(), "header field holds {bad:?}: {head:?}");
    let back = unescape(&head, |c| matches!(c, '\\' | '|').then_some(c))
        .unwrap_or_else(|e| panic!("header field {head:?}: {e}"));
    assert!(!raw_outside_escapes(&head, '|'), "unescaped | in {head:?}");
    assert_eq!(
        back,
        sanitised_header(&limit(&s, max)),
        "header round trip of {s:?}"
    );
});

/// Undoes `\x` pairs with `map`; an unknown escape or a dangling `\` is an error.
fn unescape(s: &str, map: impl Fn(char) -> Option<char>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            None => return Err("dangling backslash".into()),
            Some(e) => out.push(map(e).ok_or_else(|| format!("unknown escape \\{e}"))?),
        }
    }
    Ok(out)
}

/// Whether `special` appears outside a `\x` pair (preceded by an even run of backslashes).
fn raw_outside_escapes(s: &str, special: char) -> bool {
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            chars.next();
        } else if c == special {
            return true;
        }
    }
    false
}

/// NEL, U+2028 and U+2029: line breaks to some readers.
fn is_separator(c: char) -> bool {
    matches!(c, '\u{85}' | '\u{2028}' | '\u{2029}')
}

fn sanitised_ext(s: &str) -> String {
    s.replace("\r\n", "\n")
        .replace(['\r', '\u{85}', '\u{2028}', '\u{2029}'], "\n")
        .chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect()
}

fn sanitised_header(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}' => ' ',
            c if c.is_control() && c != '\t' => '\u{FFFD}',
            c => c,
        })
        .collect()
}

fn limit(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut t: String = s.chars().take(max - 3).collect();
    t.push_str("...");
    t
}
