//! A string that must never be printed.

use std::fmt;

/// A secret value (password, access key, or anything read through an `X_FILE` variable).
///
/// `Debug` and `Display` print `***`, so a secret can sit inside any struct that is logged or
/// formatted into an error without leaking. The only way to the value is [`Secret::expose`],
/// which makes every use greppable.
///
/// There is deliberately no `PartialEq` and no `Serialize`: comparing or serialising a secret
/// should be a visible, deliberate `expose()` at the call site.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret value itself. Pass it straight to the client that needs it; never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_the_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(format!("{:?}", Some(s.clone())), "Some(***)");
        assert_eq!(s.expose(), "hunter2");
    }
}
