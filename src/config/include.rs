//! `include`: portal tables in files of their own (`portals.d/*.toml`), merged into the main
//! file's `[portals]` before the environment overlays both.
//!
//! Rules: `include` is a list of glob patterns, relative ones resolved against the main file's
//! directory; a pattern matching nothing is fine, a matched file that cannot be read is an
//! error naming it; files whose name starts with a dot are skipped (editors' lock and swap
//! files). An included file holds `[portals.NAME]` tables and nothing else, and a portal is
//! defined once: in the main file or in one included file. Every problem is filed under the
//! included file it comes from ([`ConfigProblem::file`]).

use super::*;

/// What the included files hold, once read and checked.
#[derive(Debug, Default)]
pub(super) struct Included {
    /// Each included file's portal tables, files in path order.
    pub(super) tables: Vec<(PathBuf, serde_json::Map<String, Value>)>,
    /// Portal name → the included file that defines it (main-file portals are absent).
    pub(super) origin: BTreeMap<String, PathBuf>,
    /// Problems of `include` and of the included files.
    pub(super) problems: Vec<ConfigProblem>,
}

impl Included {
    /// `p` filed under the included file of the portal its key names, if any.
    pub(super) fn attribute(&self, p: ConfigProblem) -> ConfigProblem {
        if p.file.is_some() {
            return p;
        }
        let name = p
            .key
            .strip_prefix("portals.")
            .map(|rest| rest.split('.').next().unwrap_or_default());
        match name.and_then(|n| self.origin.get(n)) {
            Some(file) => p.in_file(file),
            None => p,
        }
    }
}

/// Reads every file `patterns` (the `include` value) names, beside `main_file` whose own
/// tree is `main`.
pub(super) fn read(main_file: &Path, main: &Value, patterns: Option<&Value>) -> Included {
    let mut out = Included::default();
    let Some(patterns) = patterns else {
        return out;
    };
    let list: Option<Vec<&str>> = match patterns {
        Value::Array(a) => a.iter().map(Value::as_str).collect(),
        _ => None,
    };
    let Some(list) = list else {
        out.problems.push(ConfigProblem::new(
            "include",
            "must be a list of glob patterns, e.g. [\"/etc/docspace-siem/portals.d/*.toml\"]",
        ));
        return out;
    };
    let base = main_file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut files = Vec::new();
    for pattern in list {
        match expand(pattern, base) {
            Ok(found) => files.extend(found),
            Err(problem) => out.problems.push(ConfigProblem::new("include", problem)),
        }
    }
    files.sort();
    files.dedup();
    let in_main: Vec<&String> = main
        .get("portals")
        .and_then(Value::as_object)
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    for file in files {
        if file == main_file {
            continue;
        }
        let Some(tables) = one_file(&file, &mut out.problems) else {
            continue;
        };
        let mut kept = serde_json::Map::new();
        for (name, table) in tables {
            let key = format!("portals.{name}");
            if in_main.contains(&&name) {
                out.problems.push(
                    ConfigProblem::new(
                        key,
                        format!(
                            "is defined in {} too: define each portal once",
                            main_file.display()
                        ),
                    )
                    .in_file(&file),
                );
            } else if let Some(first) = out.origin.get(&name) {
                out.problems.push(
                    ConfigProblem::new(
                        key,
                        format!(
                            "is defined in {} too: define each portal once",
                            first.display()
                        ),
                    )
                    .in_file(&file),
                );
            } else {
                out.origin.insert(name.clone(), file.clone());
                kept.insert(name, table);
            }
        }
        out.tables.push((file, kept));
    }
    out
}

/// The files one pattern matches, sorted; a pattern matching nothing gives none.
fn expand(pattern: &str, base: &Path) -> Result<Vec<PathBuf>, String> {
    if pattern.trim().is_empty() {
        return Err("holds an empty pattern".to_owned());
    }
    let full = if Path::new(pattern).is_absolute() {
        pattern.to_owned()
    } else {
        format!(
            "{}/{pattern}",
            glob::Pattern::escape(&base.display().to_string())
        )
    };
    let opts = glob::MatchOptions {
        require_literal_leading_dot: true,
        ..glob::MatchOptions::new()
    };
    let paths = glob::glob_with(&full, opts)
        .map_err(|e| format!("{pattern:?} is not a glob pattern ({e})"))?;
    let mut out = Vec::new();
    for entry in paths {
        match entry {
            Ok(p) => out.push(p),
            Err(e) => {
                return Err(format!(
                    "cannot read {} (pattern {pattern:?}): {}",
                    e.path().display(),
                    e.error()
                ));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The portal tables of one included file, or `None` when it cannot be read or parsed; every
/// other key in it is a problem filed under it.
fn one_file(
    file: &Path,
    problems: &mut Vec<ConfigProblem>,
) -> Option<serde_json::Map<String, Value>> {
    if !file.is_file() {
        problems.push(ConfigProblem::new(
            "include",
            format!("{} is not a file", file.display()),
        ));
        return None;
    }
    if let Err(e) = std::fs::File::open(file) {
        problems.push(ConfigProblem::new(
            "include",
            format!("cannot read {}: {e}", file.display()),
        ));
        return None;
    }
    let root: Value = match Figment::new().merge(Toml::file_exact(file)).extract() {
        Ok(v) => v,
        Err(errors) => {
            problems.extend(errors.into_iter().map(|e| {
                let (key, msg) = figment_problem(&e, file);
                ConfigProblem::new(key, crate::http::scrub(&msg)).in_file(file)
            }));
            return None;
        }
    };
    let Value::Object(root) = root else {
        return None;
    };
    let mut out = serde_json::Map::new();
    for (key, value) in root {
        if key != "portals" {
            problems.push(
                ConfigProblem::new(
                    key,
                    "an included file holds [portals.NAME] tables only: put this key in the main config file",
                )
                .in_file(file),
            );
            continue;
        }
        let Value::Object(portals) = value else {
            problems.push(
                ConfigProblem::new("portals", "must hold [portals.NAME] tables").in_file(file),
            );
            continue;
        };
        for (name, table) in portals {
            if table.is_object() {
                out.insert(name, table);
            } else {
                problems.push(
                    ConfigProblem::new(
                        format!("portals.{name}"),
                        "must be a table: [portals.NAME] with url and api_key_file",
                    )
                    .in_file(file),
                );
            }
        }
    }
    Some(out)
}
