//! Printing an error with its causes. The node agent's errors follow DESIGN §7.5: a message
//! says what failed and exposes the cause through `source()`, never both, so a log line or the
//! CLI walks the chain once with [`Chain`].

use std::error::Error;
use std::fmt;

/// Displays an error followed by each of its sources, `": "`-separated.
#[derive(Clone, Copy)]
pub struct Chain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}

impl fmt::Debug for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
