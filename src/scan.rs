//! A strict, hand-written JSON scanner for the hot path: DocSpace pages and rows.
//!
//! serde_json decodes a page in two passes (the envelope's `RawValue` rows, then each row) with
//! a visitor call per token; DocSpace pages are regular, so most of that work is overhead. This
//! scanner reads the same text by bytes, and is built so that it can only ever *give up*:
//!
//! - It accepts a subset of JSON: anything it does not fully understand (a surrogate escape,
//!   a number that is not a plain integer where an integer is wanted, nesting past
//!   [`MAX_DEPTH`], a duplicate key) makes it return `None`, and the caller decodes the same
//!   text with serde_json, which then decides, and names any error. So for every input the
//!   result is that of the serde path: a differential proptest and a fuzz target check it.
//! - It never indexes out of bounds (reads go through `get`, or stay behind a length check),
//!   never panics, and never recurses deeper than [`MAX_DEPTH`].

/// Deepest nesting the scanner follows before it leaves the text to serde_json (whose own
/// limit is 128).
pub const MAX_DEPTH: u32 = 64;

/// A position in a JSON text.
#[derive(Debug, Clone)]
pub struct Scanner<'a> {
    text: &'a str,
    i: usize,
    /// Length of the last row object decoded from this text (0: none yet), so that the next
    /// row's buffer is allocated once at about the right size.
    pub row_hint: usize,
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// A mask whose lowest set bit is the high bit of the first byte of `v` (little-endian) that
/// ends a plain run in a string: `"`, `\` or a control character; zero when there is none.
/// (Bits above the lowest may be false alarms; only the lowest is used.)
#[inline]
fn specials(v: u64) -> u64 {
    let zero = |x: u64| x.wrapping_sub(LO) & !x & HI;
    zero(v ^ (LO * u64::from(b'"')))
        | zero(v ^ (LO * u64::from(b'\\')))
        | (v.wrapping_sub(LO * 0x20) & !v & HI)
}

impl<'a> Scanner<'a> {
    /// A scanner at the start of `text`.
    pub fn new(text: &'a str) -> Scanner<'a> {
        Scanner {
            text,
            i: 0,
            row_hint: 0,
        }
    }

    /// The byte offset reached.
    pub fn pos(&self) -> usize {
        self.i
    }

    /// The text from `start` to the current position.
    pub fn since(&self, start: usize) -> Option<&'a str> {
        self.text.get(start..self.i)
    }

    #[inline]
    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    /// The next byte, if any.
    #[inline]
    pub fn peek(&self) -> Option<u8> {
        self.bytes().get(self.i).copied()
    }

    /// Skips JSON whitespace.
    #[inline]
    pub fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.i += 1;
        }
    }

    /// Skips whitespace, then consumes `c` if it comes next.
    #[inline]
    pub fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    /// True when only whitespace is left.
    pub fn at_end(&mut self) -> bool {
        self.ws();
        self.i == self.text.len()
    }

    /// Reads a string (whitespace, then the opening quote): its content between the quotes,
    /// still escaped, and whether it holds any escape. Escapes are checked for form (`\u`
    /// takes four hex digits), control characters refused.
    pub fn string_raw(&mut self) -> Option<(&'a str, bool)> {
        if !self.eat(b'"') {
            return None;
        }
        let b = self.bytes();
        let start = self.i;
        let mut escaped = false;
        let mut i = self.i;
        loop {
            // Eight bytes at a time to the first `"`, `\` or control character.
            loop {
                if let Some(chunk) = b.get(i..i + 8) {
                    let mut w = [0u8; 8];
                    w.copy_from_slice(chunk);
                    let m = specials(u64::from_le_bytes(w));
                    if m == 0 {
                        i += 8;
                        continue;
                    }
                    i += (m.trailing_zeros() / 8) as usize;
                } else {
                    while b
                        .get(i)
                        .is_some_and(|&c| c != b'"' && c != b'\\' && c >= 0x20)
                    {
                        i += 1;
                    }
                }
                break;
            }
            match *b.get(i)? {
                b'"' => {
                    let content = self.text.get(start..i)?;
                    self.i = i + 1;
                    return Some((content, escaped));
                }
                b'\\' => {
                    escaped = true;
                    match *b.get(i + 1)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
                        b'u' => {
                            let hex = b.get(i + 2..i + 6)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return None;
                            }
                            i += 6;
                        }
                        _ => return None,
                    }
                }
                0..=0x1f => return None,
                _ => i += 1,
            }
        }
    }

    /// Reads a string and appends its unescaped content to `out`. `None` (with `out` possibly
    /// extended) for anything the scanner leaves to serde_json.
    pub fn string_into(&mut self, out: &mut String) -> Option<()> {
        let (raw, escaped) = self.string_raw()?;
        if escaped {
            unescape_into(raw, out)
        } else {
            out.push_str(raw);
            Some(())
        }
    }

    /// Reads a plain non-negative integer (`0` or `[1-9][0-9]*`, at most 18 digits, not
    /// followed by a fraction or exponent).
    pub fn uint(&mut self) -> Option<i64> {
        self.ws();
        let b = self.bytes();
        let start = self.i;
        let mut n: i64 = 0;
        let mut i = start;
        while let Some(&c) = b.get(i) {
            if !c.is_ascii_digit() {
                break;
            }
            if i - start == 18 {
                return None;
            }
            n = n * 10 + i64::from(c - b'0');
            i += 1;
        }
        let digits = i - start;
        if digits == 0 || (digits > 1 && b[start] == b'0') {
            return None;
        }
        if let Some(b'.' | b'e' | b'E') = b.get(i) {
            return None;
        }
        self.i = i;
        Some(n)
    }

    /// Reads an object (whitespace, `{`, members, `}`), calling `member` with each key, the
    /// scanner at its value, which `member` must consume. A key holding an escape gives up.
    pub fn object(
        &mut self,
        mut member: impl FnMut(&mut Self, &'a str) -> Option<()>,
    ) -> Option<()> {
        self.members(|sc, key, escaped| {
            if escaped {
                return None;
            }
            member(sc, key)
        })
    }

    /// [`Scanner::object`] for any key: `member` gets each key as written, with whether it
    /// holds an escape.
    fn members(
        &mut self,
        mut member: impl FnMut(&mut Self, &'a str, bool) -> Option<()>,
    ) -> Option<()> {
        if !self.eat(b'{') {
            return None;
        }
        if self.eat(b'}') {
            return Some(());
        }
        loop {
            let (key, escaped) = self.string_raw()?;
            if !self.eat(b':') {
                return None;
            }
            member(self, key, escaped)?;
            if self.eat(b',') {
                continue;
            }
            return self.eat(b'}').then_some(());
        }
    }

    /// Reads an array (whitespace, `[`, elements, `]`), `item` consuming each element.
    pub fn array(&mut self, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        if !self.eat(b'[') {
            return None;
        }
        if self.eat(b']') {
            return Some(());
        }
        loop {
            item(self)?;
            if self.eat(b',') {
                continue;
            }
            return self.eat(b']').then_some(());
        }
    }

    /// Skips one value of any kind, checking its form.
    pub fn skip_value(&mut self, depth: u32) -> Option<()> {
        self.ws();
        match self.peek()? {
            b'"' => self.string_raw().map(|_| ()),
            b'{' if depth < MAX_DEPTH => self.members(|sc, _, _| sc.skip_value(depth + 1)),
            b'[' if depth < MAX_DEPTH => self.array(|sc| sc.skip_value(depth + 1)),
            b'{' | b'[' => None,
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => self.skip_number(),
        }
    }

    /// Consumes `null` when it comes next (after whitespace).
    pub fn null(&mut self) -> bool {
        self.ws();
        self.literal(b"null").is_some()
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        if self.bytes().get(self.i..self.i + word.len())? == word {
            self.i += word.len();
            Some(())
        } else {
            None
        }
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
    fn skip_number(&mut self) -> Option<()> {
        let b = self.bytes();
        let mut i = self.i;
        let digits = |i: &mut usize| {
            let s = *i;
            while b.get(*i).is_some_and(u8::is_ascii_digit) {
                *i += 1;
            }
            *i - s
        };
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        match b.get(i)? {
            b'0' => i += 1,
            b'1'..=b'9' => {
                digits(&mut i);
            }
            _ => return None,
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            if digits(&mut i) == 0 {
                return None;
            }
        }
        if let Some(b'e' | b'E') = b.get(i) {
            i += 1;
            if let Some(b'+' | b'-') = b.get(i) {
                i += 1;
            }
            if digits(&mut i) == 0 {
                return None;
            }
        }
        self.i = i;
        Some(())
    }
}

/// Appends the unescaped form of a string's content (as [`Scanner::string_raw`] returned it)
/// to `out`; `None` for a surrogate escape (pairs and lone halves are left to serde_json).
pub fn unescape_into(raw: &str, out: &mut String) -> Option<()> {
    let b = raw.as_bytes();
    let mut run = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            i += 1;
            continue;
        }
        out.push_str(raw.get(run..i)?);
        let c = match *b.get(i + 1)? {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hex = raw.get(i + 2..i + 6)?;
                let code = u32::from_str_radix(hex, 16).ok()?;
                i += 4;
                char::from_u32(code)?
            }
            _ => return None,
        };
        out.push(c);
        i += 2;
        run = i;
    }
    out.push_str(raw.get(run..)?);
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skip(s: &str) -> Option<usize> {
        let mut sc = Scanner::new(s);
        sc.skip_value(0)?;
        sc.at_end().then_some(sc.pos())
    }

    #[test]
    fn skips_what_serde_json_accepts_and_refuses_what_it_refuses() {
        for ok in [
            r#"{"a":[1,-2.5e3,true,false,null,"x\"\\\/\b\f\n\r\tAé"],"b":{}}"#,
            r#"  [ ]  "#,
            r#""\u00e9\uD83D\uDE00""#,
            "0",
            "-0.0E+1",
            r#"{"k" : { "n" : [ [ ] , { } ] } }"#,
        ] {
            assert!(skip(ok).is_some(), "{ok}");
            assert!(
                serde_json::from_str::<serde_json::Value>(ok).is_ok(),
                "{ok}"
            );
        }
        for bad in [
            r#"{"a":1,}"#,
            r#"[1,]"#,
            "01",
            "-",
            "1.",
            "1e",
            ".5",
            "tru",
            r#""a"#,
            "\"a\u{1}b\"",
            r#""\x""#,
            r#""\u12G4""#,
            r#"{"a" 1}"#,
            r#"{1:2}"#,
            "",
        ] {
            assert!(skip(bad).is_none(), "{bad:?}");
            assert!(
                serde_json::from_str::<serde_json::Value>(bad).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn nesting_past_the_limit_is_left_to_serde_json() {
        let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(skip(&deep).is_none());
        let fine = format!("{}{}", "[".repeat(60), "]".repeat(60));
        assert!(skip(&fine).is_some());
    }

    #[test]
    fn strings_unescape_as_serde_json_does() {
        for s in [
            r#""plain""#,
            r#""Login Fail. Too many attempts""#,
            r#""2025-01-15T14:32:07.0000000\u002B01:00""#,
            r#""\u041C\u043E\u0441\u043A\u0432\u0430 \u003Cb\u003E""#,
            r#""tab\tnl\ncr\rq\"bs\\sl\/""#,
            r#""Zürich, long enough to take the eight-byte path; and more text""#,
        ] {
            let mut sc = Scanner::new(s);
            let mut out = String::from("prefix");
            sc.string_into(&mut out).expect(s);
            let want: String = serde_json::from_str(s).unwrap();
            assert_eq!(out, format!("prefix{want}"));
            assert!(sc.at_end());
        }
        // Surrogates are left to serde_json.
        let mut out = String::new();
        assert!(
            Scanner::new(r#""\uD83D\uDE00""#)
                .string_into(&mut out)
                .is_none()
        );
    }

    #[test]
    fn integers_are_plain_or_left_to_serde_json() {
        let int = |s: &str| Scanner::new(s).uint();
        assert_eq!(int("0"), Some(0));
        assert_eq!(int(" 48215,"), Some(48215));
        assert_eq!(int("999999999999999999"), Some(999_999_999_999_999_999));
        for other in ["1234567890123456789", "-1", "01", "1.0", "1e3", "\"1\"", ""] {
            assert_eq!(int(other), None, "{other}");
        }
    }
}
