//! Configuration problems: [`ConfigProblem`] and [`ConfigErrors`], the warnings gathered during
//! validation, and the translation of figment, TOML and serde errors into `key: problem` lines
//! that never echo a value (a value may be a secret).

use super::*;

/// One problem in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Dotted key path, e.g. `portals.main.url`.
    pub key: String,
    /// What is wrong, lowercase, no trailing period.
    pub problem: String,
    /// The included file (`include`) the key comes from; `None` for the main file.
    pub file: Option<PathBuf>,
}

impl ConfigProblem {
    pub(super) fn new(key: impl Into<String>, problem: impl Into<String>) -> Self {
        ConfigProblem {
            key: key.into(),
            problem: problem.into(),
            file: None,
        }
    }

    /// The same problem, filed under an included file.
    pub(super) fn in_file(mut self, file: &Path) -> Self {
        self.file = Some(file.to_path_buf());
        self
    }

    /// The environment variable that sets this key.
    pub fn env_var(&self) -> String {
        let path: Vec<String> = self
            .key
            .split('.')
            .map(|part| part.to_ascii_uppercase().replace('-', "_"))
            .collect();
        format!("{ENV_PREFIX}{}", path.join("__"))
    }
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}: ", file.display())?;
        }
        if self.key.is_empty() {
            write!(f, "{}", self.problem)
        } else {
            write!(f, "{}: {} (env {})", self.key, self.problem, self.env_var())
        }
    }
}

/// Every problem found in a configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigProblem>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

thread_local! {
    /// Warnings of the validation under way on this thread (the checks that find them run deep
    /// inside it); [`load`] moves them into [`Config::warnings`].
    pub(super) static WARNINGS: std::cell::RefCell<Vec<ConfigProblem>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A figment error as `(key, problem)` without any value from the configuration: a TOML
/// syntax error names the key of the line and the line and column, never the line's text (it
/// may be `token = "…` unterminated); other errors name only the kind of value found.
pub(super) fn figment_problem(e: &figment::Error, file: &Path) -> (String, String) {
    use figment::error::Kind;
    let key = e.path.join(".");
    let problem = match &e.kind {
        Kind::Message(m) => return toml_problem(m, file).unwrap_or((key, "cannot be read".into())),
        Kind::InvalidType(actual, expected) => {
            format!(
                "invalid type: found {}, expected {expected}",
                kind_of(actual)
            )
        }
        Kind::InvalidValue(actual, expected) => {
            format!(
                "invalid value: found {}, expected {expected}",
                kind_of(actual)
            )
        }
        Kind::UnknownVariant(_, expected) => {
            format!("unknown variant, expected one of {}", expected.join(", "))
        }
        other => other.to_string(),
    };
    (key, problem)
}

/// The kind of a value, without the value.
pub(super) fn kind_of(a: &figment::error::Actual) -> &'static str {
    use figment::error::Actual;
    match a {
        Actual::Bool(_) => "a boolean",
        Actual::Unsigned(_) | Actual::Signed(_) => "an integer",
        Actual::Float(_) => "a number",
        Actual::Char(_) | Actual::Str(_) => "a string",
        Actual::Bytes(_) => "bytes",
        Actual::Seq => "a list",
        Actual::Map => "a table",
        _ => "another kind of value",
    }
}

/// A TOML parse error (`TOML parse error at line L, column C`, the quoted source line, then
/// the problem) as `(key, "TOML syntax error at line L, column C: problem")`, the key read from
/// the text before `=` on that line and the table header above it.
pub(super) fn toml_problem(message: &str, file: &Path) -> Option<(String, String)> {
    let mut lines = message.lines();
    let first = lines.next()?;
    let at = first.find("line ")?;
    let pos = first[at..].trim();
    let mut nums = pos
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|n| n.parse::<usize>().ok());
    let (line, column) = (nums.next()?, nums.next().unwrap_or(0));
    // The snippet lines are `  |`, `3 | token = "…`, `  |     ^`: drop every one of them.
    let problem: Vec<&str> = lines
        .filter(|l| {
            let t = l.trim_start();
            !(t.starts_with('|')
                || t.split_once('|')
                    .is_some_and(|(n, _)| n.trim().chars().all(|c| c.is_ascii_digit())))
        })
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let problem = if problem.is_empty() {
        "invalid TOML".to_owned()
    } else {
        problem.join("; ")
    };
    let key = std::fs::read_to_string(file)
        .ok()
        .map(|text| toml_key_at(&text, line))
        .unwrap_or_default();
    Some((
        key,
        format!("TOML syntax error at line {line}, column {column}: {problem}"),
    ))
}

/// The dotted key a TOML line sets (`[table]` above it, then the bare key before `=`), or ""
/// when that is not plain: no part of a value is ever returned.
pub(super) fn toml_key_at(text: &str, line: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let Some(this) = lines.get(line.saturating_sub(1)) else {
        return String::new();
    };
    let bare = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    };
    let Some((k, _)) = this.split_once('=') else {
        return String::new();
    };
    let k = k.trim();
    if !bare(k) {
        return String::new();
    }
    let table = lines[..line.saturating_sub(1)]
        .iter()
        .rev()
        .map(|l| l.trim())
        .find(|l| l.starts_with('[') && l.ends_with(']'))
        .map(|l| l.trim_matches(['[', ']']).trim())
        .filter(|t| bare(t))
        .unwrap_or_default();
    if table.is_empty() {
        k.to_owned()
    } else {
        format!("{table}.{k}")
    }
}

/// A problem from serde for the table at `key`: `unknown field `x`` and `invalid type` name the
/// field, so the problem is filed under `key.x` (and so names the right env var).
pub(super) fn serde_problem(key: &str, e: &serde_json::Error) -> ConfigProblem {
    let msg = without_values(&e.to_string());
    if let Some(rest) = msg.strip_prefix("unknown field `")
        && let Some((field, _)) = rest.split_once('`')
    {
        let full = if key.is_empty() {
            field.to_owned()
        } else {
            format!("{key}.{field}")
        };
        return ConfigProblem::new(full, format!("unknown key ({msg})"));
    }
    ConfigProblem::new(key, msg)
}

/// Every problem of a table that did not deserialize, key by key: serde stops at the first
/// one, and a wrong type must not hide the next problem (`poll_interval = 30` and an unknown
/// key in the same table are both named). Each key is tried alone, beside the `context` keys
/// that give it its meaning (a sink's `type`); `first` is the error of the whole table, used
/// when no single key explains it.
pub(super) fn each_key<T: serde::de::DeserializeOwned>(
    prefix: &str,
    table: &Value,
    context: &[&str],
    first: &serde_json::Error,
) -> Vec<ConfigProblem> {
    let name = |k: &str| {
        if prefix.is_empty() {
            k.to_owned()
        } else {
            format!("{prefix}.{k}")
        }
    };
    let Value::Object(m) = table else {
        return vec![serde_problem(prefix, first)];
    };
    let mut out = Vec::new();
    let mut base = serde_json::Map::new();
    for c in context {
        if let Some(v) = m.get(*c) {
            base.insert((*c).to_owned(), v.clone());
        }
    }
    if let Err(e) = serde_json::from_value::<T>(Value::Object(base.clone())) {
        out.push(serde_problem(prefix, &e));
        base.clear();
    }
    for (k, v) in m {
        if context.contains(&k.as_str()) {
            continue;
        }
        let mut one = base.clone();
        one.insert(k.clone(), v.clone());
        if let Err(e) = serde_json::from_value::<T>(Value::Object(one)) {
            let p = serde_problem(prefix, &e);
            // A type error names no key: it is this one's.
            let key = if p.key == prefix { name(k) } else { p.key };
            out.push(ConfigProblem::new(key, p.problem));
        }
    }
    if out.is_empty() {
        out.push(serde_problem(prefix, first));
    }
    out
}

/// `table` without the keys that `problems` name (the last segment of each key).
pub(super) fn without(table: &Value, problems: &[ConfigProblem]) -> Value {
    let mut t = table.clone();
    if let Value::Object(m) = &mut t {
        for p in problems {
            if let Some(k) = p.key.rsplit('.').next() {
                m.remove(k);
            }
        }
    }
    t
}

/// A serde message without the value it quotes: `invalid type: string "Authorization: Bearer
/// …", expected a map` becomes `invalid type: a string, expected a map` (the value may be a
/// secret put under the wrong key or in the wrong shape); unknown variants lose their name.
pub(super) fn without_values(msg: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = msg.strip_prefix(prefix) {
            let (found, expected) = rest.split_once(", expected ").unwrap_or((rest, "?"));
            let kind = [
                ("string", "a string"),
                ("integer", "an integer"),
                ("floating point", "a number"),
                ("boolean", "a boolean"),
                ("char", "a string"),
                ("map", "a table"),
                ("sequence", "a list"),
                ("null", "nothing"),
            ]
            .iter()
            .find(|(w, _)| found.starts_with(w))
            .map_or("another kind of value", |(_, k)| k);
            return format!("{prefix}{kind}, expected {expected}");
        }
    }
    if let Some(rest) = msg.strip_prefix("unknown variant `")
        && let Some((_, expected)) = rest.split_once("`, ")
    {
        return format!("unknown variant, {expected}");
    }
    msg.to_owned()
}
