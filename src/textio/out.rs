//! Standard output for commands. When the reader has gone (`kefu check-text … | head`),
//! the command ends quietly, as `cat` would, instead of a panic or an error message.

use std::io::{ErrorKind, Write};

/// Writes `text` to stdout as is, and flushes.
pub fn print(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// Writes `text` and a line break to stdout where no error can be returned (an alert
/// printed by the demo): a closed pipe ends the process quietly with status 0, any other
/// failure is reported on stderr and ends it with status 1.
pub fn print_line_or_exit(text: &str) {
    let mut line = String::with_capacity(text.len() + 1);
    line.push_str(text);
    line.push('\n');
    if let Err(e) = print(&line) {
        if e.kind() == ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("kefu: writing to standard output: {e}");
        std::process::exit(1);
    }
}

/// Whether an error, or any cause in its chain, is a closed pipe.
pub fn is_broken_pipe(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(error);
    while let Some(e) = cur {
        if e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == ErrorKind::BrokenPipe) {
            return true;
        }
        cur = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("printing the report")]
    struct Wrapper(#[source] std::io::Error);

    #[test]
    fn finds_a_closed_pipe_anywhere_in_the_chain() {
        let pipe = || std::io::Error::from(ErrorKind::BrokenPipe);
        assert!(is_broken_pipe(&pipe()));
        assert!(is_broken_pipe(&Wrapper(pipe())));
        let any = anyhow::Error::new(Wrapper(pipe())).context("kefu replay");
        assert!(is_broken_pipe(any.as_ref()));
        assert!(!is_broken_pipe(&Wrapper(std::io::Error::from(ErrorKind::StorageFull))));
    }
}
