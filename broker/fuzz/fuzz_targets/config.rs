//! The configuration file parser and applier (`tribune_broker::config`):
//! `parse_str` (syntax, `$variables`, `include`) and `apply_str` (every
//! option onto `Options`, then the cross-option checks), on arbitrary text.
//!
//! Checked: neither panics; every error names the file and a position
//! inside the text (line 1.. up to the last line, column 1.. up to one past
//! the end of that line), or line 0 for a problem that concerns the file as
//! a whole; `apply_str` reports at least one error when it fails; and a
//! text `parse_str` rejects, `apply_str` rejects with the same error.
//!
//! Nothing here touches the filesystem: the text claims to live in a
//! directory that does not exist, and when it mentions `include` its `/`
//! are turned into `_`, so every include is a single name in that missing
//! directory and fails to open. `$variables` fall back to the environment,
//! which is emptied once at start (for reproducible runs) and given a few
//! variables of each kind.
#![no_main]

use std::path::Path;
use std::sync::Once;

use libfuzzer_sys::fuzz_target;
use tribune_broker::config::{self, ConfigError};
use tribune_broker::options::Options;

const ORIGIN: &str = "/nonexistent-tribune-fuzz/fuzz.conf";

fn environment() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for (k, _) in std::env::vars_os() {
            std::env::remove_var(k);
        }
        for (k, v) in [
            ("FUZZ_INT", "42"),
            ("FUZZ_SIZE", "1MB"),
            ("FUZZ_STR", "hello"),
            ("FUZZ_MAP", "{ user: a, password: b }"),
            ("FUZZ_LIST", "[1, 2, 3]"),
            ("FUZZ_BAD", "{ unterminated"),
            ("FUZZ_SELF", "$FUZZ_SELF"),
        ] {
            std::env::set_var(k, v);
        }
    });
}

/// The text's lines as the parser counts them: split at `\n`, in chars.
fn line_lengths(src: &str) -> Vec<usize> {
    src.split('\n').map(|l| l.chars().count()).collect()
}

fn check_position(e: &ConfigError, lines: &[usize]) {
    assert_eq!(e.file, Path::new(ORIGIN), "error names another file: {e}");
    assert!(!e.message.is_empty(), "error without a message");
    if e.line == 0 {
        assert_eq!(e.col, 0, "file-level error with a column: {e}");
        return;
    }
    assert!(e.line <= lines.len(), "line past the end: {e}");
    assert!(
        e.col >= 1 && e.col <= lines[e.line - 1] + 1,
        "column outside line {} ({} chars): {e}",
        e.line,
        lines[e.line - 1]
    );
}

fuzz_target!(|input: &[u8]| {
    environment();
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    let text = if text.to_ascii_lowercase().contains("include") {
        text.replace('/', "_")
    } else {
        text.to_string()
    };
    let lines = line_lengths(&text);
    let origin = Path::new(ORIGIN);

    let parsed = config::parse_str(&text, origin);
    if let Err(e) = &parsed {
        assert!(e.line >= 1, "syntax error without a line: {e}");
        check_position(e, &lines);
    }

    let mut opts = Options::default();
    match config::apply_str(&mut opts, &text, origin) {
        Ok(_warnings) => {
            assert!(parsed.is_ok(), "applied a text that does not parse");
            let _ = config::validate_options(&opts);
        }
        Err(errs) => {
            assert!(!errs.errors().is_empty(), "failed without an error");
            for e in errs.errors() {
                check_position(e, &lines);
            }
            let _ = errs.to_string();
            if let Err(e) = &parsed {
                assert_eq!(errs.errors(), std::slice::from_ref(e));
            }
        }
    }
});
