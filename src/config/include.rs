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
    /// Every included portal's table, by name.
    pub(super) tables: serde_json::Map<String, Value>,
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
                out.tables.insert(name, table);
            }
        }
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

#[cfg(test)]
mod tests {
    use super::super::*;

    const MAIN: &str = r#"
state_dir = "/tmp/x"
include = ["portals.d/*.toml"]
[portals.main]
url = "https://docspace.example.com"
api_key = "sk-main"
[sinks.console]
type = "stdout"
"#;

    fn portal(name: &str) -> String {
        format!("[portals.{name}]\nurl = \"https://{name}.example.com\"\napi_key = \"sk-{name}\"\n")
    }

    /// A main file and `portals.d/` beside it, with `files` as `(name, text)`.
    fn setup(main: &str, files: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().join("portals.d");
        std::fs::create_dir(&d).expect("mkdir");
        for (name, text) in files {
            std::fs::write(d.join(name), text).expect("write");
        }
        let file = dir.path().join("main.toml");
        std::fs::write(&file, main).expect("write");
        (dir, file)
    }

    fn load_env(file: &Path, env: &[(&str, &str)]) -> Result<Config, ConfigErrors> {
        load(&Sources {
            file: file.to_path_buf(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        })
    }

    fn lines(e: ConfigErrors) -> Vec<String> {
        e.0.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn portals_of_included_files_join_the_main_file_s() {
        let (dir, file) = setup(
            MAIN,
            &[
                ("acme.toml", &portal("acme")),
                ("beta.toml", &portal("beta")),
                (".gamma.toml", &portal("gamma")),
                ("notes.txt", "not toml ["),
            ],
        );
        let c = load_env(&file, &[]).expect("valid");
        let names: Vec<&str> = c.portals.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["acme", "beta", "main"]);
        assert_eq!(
            c.origin.get("acme"),
            Some(&dir.path().join("portals.d/acme.toml"))
        );
        assert!(!c.origin.contains_key("main"));
    }

    #[test]
    fn a_pattern_matching_nothing_is_fine_and_absolute_patterns_work() {
        let (dir, file) = setup(MAIN, &[("acme.toml", &portal("acme"))]);
        let abs = dir.path().join("portals.d").join("a*.toml");
        let main = MAIN.replace(
            "include = [\"portals.d/*.toml\"]",
            &format!(
                "include = [\"nowhere/*.toml\", {:?}]",
                abs.display().to_string()
            ),
        );
        std::fs::write(&file, main).expect("write");
        let c = load_env(&file, &[]).expect("valid");
        assert_eq!(c.portals.len(), 2);
    }

    #[test]
    fn environment_overrides_reach_included_portals() {
        let (_dir, file) = setup(MAIN, &[("acme.toml", &portal("acme"))]);
        let c = load_env(
            &file,
            &[("DOCSPACE_SIEM_PORTALS__ACME__POLL_INTERVAL", "7s")],
        )
        .expect("valid");
        let acme = c.portals.iter().find(|p| p.name == "acme").expect("acme");
        assert_eq!(acme.poll_interval, Duration::from_secs(7));
    }

    #[test]
    fn a_portal_defined_twice_names_both_files() {
        let (dir, file) = setup(
            MAIN,
            &[
                ("a.toml", &portal("acme")),
                ("b.toml", &(portal("acme") + &portal("main"))),
            ],
        );
        let d = dir.path().join("portals.d");
        let errs = lines(load_env(&file, &[]).expect_err("duplicates"));
        assert!(
            errs.contains(&format!(
                "{}: portals.acme: is defined in {} too: define each portal once (env DOCSPACE_SIEM_PORTALS__ACME)",
                d.join("b.toml").display(),
                d.join("a.toml").display()
            )),
            "{errs:#?}"
        );
        assert!(
            errs.iter().any(|l| l.starts_with(&format!(
                "{}: portals.main: is defined in {} too",
                d.join("b.toml").display(),
                file.display()
            ))),
            "{errs:#?}"
        );
    }

    #[test]
    fn anything_but_portal_tables_in_an_included_file_is_named_with_its_file() {
        let (dir, file) = setup(
            MAIN,
            &[(
                "acme.toml",
                &(portal("acme") + "[sinks.extra]\ntype = \"stdout\"\n"),
            )],
        );
        let errs = lines(load_env(&file, &[]).expect_err("a sink in an include"));
        let shown = dir.path().join("portals.d/acme.toml").display().to_string();
        assert!(
            errs.iter().any(|l| l.starts_with(&format!(
                "{shown}: sinks: an included file holds [portals.NAME] tables only"
            ))),
            "{errs:#?}"
        );
    }

    #[test]
    fn every_problem_of_every_file_is_named_by_file_and_key_at_once() {
        let (dir, file) = setup(
            &MAIN.replace(
                "api_key = \"sk-main\"",
                "api_key = \"sk-main\"\npoll_interval = \"soon\"",
            ),
            &[
                (
                    "acme.toml",
                    &portal("acme").replace("https://acme", "ftp://acme"),
                ),
                (
                    "beta.toml",
                    "[portals.beta]\nurl = \"https://beta.example.com\"\napi_key = \"sk-b\"\nbogus = 1\n",
                ),
                ("gamma.toml", "[portals.gamma\nurl = 1\n"),
            ],
        );
        let d = dir.path().join("portals.d");
        let errs = lines(load_env(&file, &[]).expect_err("invalid"));
        let has = |prefix: String| errs.iter().any(|l| l.starts_with(&prefix));
        assert!(
            has(format!(
                "{}: portals.acme.url: ",
                d.join("acme.toml").display()
            )),
            "{errs:#?}"
        );
        assert!(
            has(format!(
                "{}: portals.beta.bogus: unknown key",
                d.join("beta.toml").display()
            )),
            "{errs:#?}"
        );
        assert!(
            has(format!("{}: ", d.join("gamma.toml").display())),
            "{errs:#?}"
        );
        assert!(has("portals.main.poll_interval: ".to_owned()), "{errs:#?}");
    }

    #[test]
    fn a_matched_path_that_cannot_be_read_is_named() {
        let (dir, file) = setup(MAIN, &[]);
        let link = dir.path().join("portals.d/gone.toml");
        std::os::unix::fs::symlink(dir.path().join("missing"), &link).expect("symlink");
        let errs = lines(load_env(&file, &[]).expect_err("dangling"));
        assert!(
            errs.iter()
                .any(|l| l.starts_with("include: ") && l.contains(&link.display().to_string())),
            "{errs:#?}"
        );
    }

    #[test]
    fn include_must_be_a_list_of_patterns() {
        let (_dir, file) = setup(
            &MAIN.replace("[\"portals.d/*.toml\"]", "\"portals.d\""),
            &[],
        );
        let errs = lines(load_env(&file, &[]).expect_err("not a list"));
        assert!(
            errs[0].starts_with("include: must be a list of glob patterns"),
            "{errs:#?}"
        );
    }

    /// `state_dir`, `[log]` and `threads` only change at a restart: named, and neither a
    /// portal change nor a pipeline change.
    #[test]
    fn what_only_a_restart_changes_is_named_apart() {
        let (_dir, file) = setup(MAIN, &[]);
        let old = load_env(&file, &[]).expect("valid");
        let changed = MAIN
            .replace(
                "state_dir = \"/tmp/x\"",
                "state_dir = \"/tmp/y\"\nthreads = 2",
            )
            .replace(
                "[sinks.console]",
                "[log]\nlevel = \"debug\"\n[sinks.console]",
            );
        std::fs::write(&file, changed).expect("write");
        let c = Changes::between(&old, &load_env(&file, &[]).expect("valid"));
        assert_eq!(c.at_restart, ["state_dir", "log", "threads"]);
        assert!(!c.pipeline && !c.portals(), "{c:?}");
    }

    #[test]
    fn a_reload_sees_portals_added_removed_and_changed_credentials() {
        let (dir, file) = setup(
            MAIN,
            &[
                ("acme.toml", &portal("acme")),
                ("beta.toml", &portal("beta")),
            ],
        );
        let key = dir.path().join("main.key");
        std::fs::write(&key, "sk-one").expect("key");
        let main = MAIN.replace(
            "api_key = \"sk-main\"",
            &format!("api_key_file = {:?}", key.display().to_string()),
        );
        std::fs::write(&file, &main).expect("write");
        let old = load_env(&file, &[]).expect("valid");
        let d = dir.path().join("portals.d");
        std::fs::remove_file(d.join("beta.toml")).expect("rm");
        std::fs::write(d.join("gamma.toml"), portal("gamma")).expect("write");
        std::fs::write(&key, "sk-two").expect("key");
        let new = load_env(&file, &[]).expect("valid");
        let c = Changes::between(&old, &new);
        assert_eq!(c.added, ["gamma"]);
        assert_eq!(c.removed, ["beta"]);
        assert_eq!(c.changed, ["main"]);
        assert!(!c.pipeline && c.at_restart.is_empty(), "{c:?}");
        std::fs::write(
            &file,
            main.replace("type = \"stdout\"", "type = \"stdout\"\nformat = \"cef\""),
        )
        .expect("write");
        let c = Changes::between(&new, &load_env(&file, &[]).expect("valid"));
        assert!(c.pipeline && !c.portals(), "{c:?}");
    }
}
