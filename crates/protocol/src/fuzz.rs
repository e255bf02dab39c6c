//! Fuzzing harness over the signaling decoder, for the `cargo fuzz` target
//! `signaling` in `fuzz/` (feature `fuzz`) and for the test that replays its
//! committed corpus and regressions.

use crate::{ClientMessage, ServerMessage};

/// Any bytes as one text frame, read both as a client's and as a server's
/// message.
///
/// Invariants: nothing panics; what parses serialises to JSON that parses
/// back to the same message; what does not parse gets an error with a
/// stable error code and a message bounded by the input's length.
pub fn signaling(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match ClientMessage::from_json(text) {
        Ok(msg) => {
            let json = msg.to_json();
            assert_eq!(ClientMessage::from_json(&json).as_ref(), Ok(&msg), "{json}");
        }
        Err(e) => {
            let _ = e.code();
            // serde quotes the offending value (escaped): bounded by the input.
            assert!(e.to_string().len() <= 256 + 8 * text.len(), "{e}");
        }
    }
    if let Ok(msg) = ServerMessage::from_json(text) {
        let json = msg.to_json();
        assert_eq!(ServerMessage::from_json(&json).as_ref(), Ok(&msg), "{json}");
    }
}

/// Replays every file of `fuzz/corpus/<target>` and
/// `fuzz/regressions/<target>` (at the workspace root) through `harness`,
/// in name order; returns how many. For the crates' corpus tests.
///
/// # Panics
/// When a file cannot be read, or when `harness` panics on one.
pub fn replay(target: &str, harness: fn(&[u8])) -> usize {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut n = 0;
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        let mut files: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        files.sort();
        for f in files {
            let data = std::fs::read(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            harness(&data);
            n += 1;
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signaling_corpus_replays() {
        let n = replay("signaling", signaling);
        assert!(n >= 10, "the signaling corpus has {n} inputs");
    }
}
