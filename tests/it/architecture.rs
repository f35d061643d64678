//! The architecture test ("tidy"), in the style of rust-analyzer's: it reads every file under
//! `src/` and fails, naming file and line, when the code breaks a rule of ARCHITECTURE.md.
//!
//! Simple line scanning, comments skipped. It reads files only; it must not build, run or
//! change anything. Each rule is also checked against a planted line, so a rule that stops
//! matching fails here too.

use std::path::{Path, PathBuf};

/// The clients: they take parsed values, never the configuration module.
const CLIENTS: [&str; 5] = [
    "src/jenkins/",
    "src/directory/",
    "src/iam/",
    "src/escalation/",
    "src/alertmanager/",
];

/// Crates (and modules) that do I/O, forbidden in the pure `src/diagnosis/`.
const IO_CRATES: [&str; 6] = [
    "tokio::net",
    "tokio::fs",
    "std::fs",
    "reqwest",
    "sqlx",
    "hyper",
];

/// Every rule broken by one line of `path` (relative, `/`-separated, e.g. `src/cli.rs`);
/// `unit_test` when the line is in the file's `#[cfg(test)]` module (tests may use `src/sim`).
fn line_violations(path: &str, line: &str, unit_test: bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut rule = |broken: bool, what: &str| {
        if broken {
            out.push(what.to_string());
        }
    };
    rule(
        line.contains("slack_morphism") && !path.starts_with("src/slack/"),
        "slack-morphism is used outside src/slack/",
    );
    rule(
        (line.contains("env::var") || line.contains("env::vars")) && path != "src/config.rs",
        "the environment is read outside src/config.rs",
    );
    rule(
        (line.contains("crate::sim") || line.contains("linkbot::sim"))
            && path != "src/demo.rs"
            && !path.starts_with("src/sim/")
            && !unit_test,
        "src/sim is used outside src/demo.rs and the tests",
    );
    if path.starts_with("src/diagnosis/") {
        for io in IO_CRATES {
            rule(
                uses_path(line, io),
                &format!("`{io}` (I/O) is used in the pure src/diagnosis/"),
            );
        }
    }
    rule(
        CLIENTS.iter().any(|c| path.starts_with(c))
            && (line.contains("crate::config") || line.contains("linkbot::config")),
        "a client imports the config module (take a parsed value instead)",
    );
    rule(
        (line.contains("crate::cli") || line.contains("linkbot::cli"))
            && !matches!(path, "src/main.rs" | "src/cli.rs"),
        "the CLI is imported by the library (only src/main.rs calls it; no cycle)",
    );
    rule(
        line.contains("todo!(") || line.contains("unimplemented!("),
        "todo!/unimplemented! left in the code",
    );
    out
}

/// Whether `line` names the path `name` (`reqwest::…`, `use sqlx;`, `hyper::Uri`), not merely a
/// word that contains it (`hyperlink`).
fn uses_path(line: &str, name: &str) -> bool {
    line.match_indices(name).any(|(i, _)| {
        let before = line[..i].chars().next_back();
        let after = line[i + name.len()..].chars().next();
        !matches!(before, Some(c) if c.is_alphanumeric() || c == '_')
            && matches!(after, Some(':' | ';' | ',' | '}' | ' ' | ')') | None)
    })
}

/// Every violation in one file, as `path:line: rule`. Comment lines are skipped. A top-level
/// `#[cfg(test)]` starts the file's unit tests, which the house style puts last.
fn file_violations(path: &str, text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_block_comment = false;
    let mut unit_test = false;
    for (i, raw) in text.lines().enumerate() {
        unit_test |= raw.starts_with("#[cfg(test)]");
        let line = raw.trim_start();
        if in_block_comment {
            if line.contains("*/") {
                in_block_comment = false;
            }
            continue;
        }
        if line.starts_with("/*") {
            in_block_comment = !line.contains("*/");
            continue;
        }
        if line.starts_with("//") {
            continue;
        }
        // A trailing `// comment` (but not a `//` inside a string, as in a URL).
        let code = match line.find(" //") {
            Some(at) if !line[..at].contains('"') => &line[..at],
            _ => line,
        };
        for v in line_violations(path, code, unit_test) {
            out.push(format!("{path}:{}: {v}\n    {}", i + 1, raw.trim()));
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn src_keeps_the_rules_of_architecture_md() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    assert!(
        files.len() > 20,
        "found only {} files under src/",
        files.len()
    );
    let mut violations = Vec::new();
    for file in &files {
        let rel = file
            .strip_prefix(root)
            .expect("under the crate")
            .to_string_lossy()
            .replace('\\', "/");
        let text = std::fs::read_to_string(file)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        violations.extend(file_violations(&rel, &text));
    }
    assert!(
        violations.is_empty(),
        "ARCHITECTURE.md's rules are broken ({}):\n{}",
        violations.len(),
        violations.join("\n")
    );
}

#[test]
fn every_rule_catches_a_planted_line() {
    let plants = [
        (
            "src/app.rs",
            "use slack_morphism::prelude::*;",
            "slack-morphism",
        ),
        ("src/app.rs", "let v = std::env::var(\"X\");", "environment"),
        (
            "src/cli.rs",
            "let v = std::env::var_os(\"X\");",
            "environment",
        ),
        (
            "src/check/mod.rs",
            "for (k, v) in std::env::vars() {",
            "environment",
        ),
        ("src/app.rs", "use crate::sim::world::World;", "src/sim"),
        (
            "src/slack/web.rs",
            "let w = linkbot::sim::world::start();",
            "src/sim",
        ),
        (
            "src/diagnosis/rules.rs",
            "let s = std::fs::read(p);",
            "std::fs",
        ),
        (
            "src/diagnosis/artifacts.rs",
            "use tokio::net::TcpStream;",
            "tokio::net",
        ),
        (
            "src/diagnosis/render.rs",
            "let c = reqwest::Client::new();",
            "reqwest",
        ),
        ("src/diagnosis/mod.rs", "use sqlx;", "sqlx"),
        (
            "src/diagnosis/verdict.rs",
            "fn f(u: hyper::Uri) {}",
            "hyper",
        ),
        ("src/jenkins/mod.rs", "use crate::config::Config;", "client"),
        (
            "src/escalation/github.rs",
            "let u = crate::config::base_url(&u);",
            "client",
        ),
        ("src/demo.rs", "crate::cli::render_audit(&e)", "CLI"),
        ("src/store/mod.rs", "todo!()", "todo!"),
        ("src/store/mod.rs", "    unimplemented!(\"later\")", "todo!"),
    ];
    for (path, line, expect) in plants {
        let found = file_violations(path, line);
        assert_eq!(found.len(), 1, "{path}: {line:?} gave {found:?}");
        assert!(found[0].contains(expect), "{path}: {line:?} gave {found:?}");
        assert!(found[0].starts_with(&format!("{path}:1: ")), "{found:?}");
    }
    // What the rules allow.
    let allowed = [
        ("src/slack/web.rs", "use slack_morphism::prelude::*;"),
        ("src/config.rs", "std::env::var(\"RUST_LOG\")"),
        ("src/demo.rs", "use crate::sim::world::World;"),
        ("src/sim/world.rs", "use crate::sim::slack::SlackSim;"),
        ("src/diagnosis/render.rs", "// hyper::Uri is not used here"),
        ("src/diagnosis/render.rs", "let s = \"hyperlink\";"),
        ("src/check/mod.rs", "let c = reqwest::Client::new();"),
        ("src/app.rs", "use crate::config::Config;"),
        ("src/main.rs", "let cli = linkbot::cli::Cli::parse();"),
        ("src/cli.rs", "const V: &str = env!(\"CARGO_PKG_VERSION\");"),
        ("src/app.rs", "/* todo!() in a block comment */"),
        (
            "src/slack/blocks.rs",
            "#[cfg(test)]\nmod tests {\n    use crate::sim::blockkit::validate_message;",
        ),
    ];
    for (path, line) in allowed {
        let found = file_violations(path, line);
        assert!(found.is_empty(), "{path}: {line:?} gave {found:?}");
    }
}
