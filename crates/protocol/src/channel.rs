use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest channel name, in bytes.
pub const MAX_CHANNEL_BYTES: usize = 64;

/// A validated channel name: 1 to 64 bytes of ASCII letters, digits, `-`, `_`
/// or `.`, so that it is safe in a URL path and in logs.
///
/// Deserialising an invalid name fails, so a message that names a bad channel
/// is rejected as a whole with [`crate::ErrorCode::InvalidChannel`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ts_rs::TS)]
#[serde(try_from = "String", into = "String")]
#[ts(type = "string")]
pub struct ChannelName(String);

/// Why a string is not a valid [`ChannelName`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelNameError {
    /// The name is empty.
    #[error("channel name is empty")]
    Empty,
    /// The name is longer than 64 bytes.
    #[error("channel name is longer than {MAX_CHANNEL_BYTES} bytes")]
    TooLong,
    /// The name contains a character other than `[A-Za-z0-9._-]`.
    #[error("channel name contains {0:?}; allowed are A-Z a-z 0-9 . _ -")]
    BadChar(char),
}

impl ChannelName {
    /// Validates `name`.
    ///
    /// # Errors
    /// [`ChannelNameError`] when the name is empty, too long or has a
    /// character outside `[A-Za-z0-9._-]`.
    pub fn new(name: impl Into<String>) -> Result<Self, ChannelNameError> {
        let name = name.into();
        if name.is_empty() {
            return Err(ChannelNameError::Empty);
        }
        if name.len() > MAX_CHANNEL_BYTES {
            return Err(ChannelNameError::TooLong);
        }
        if let Some(c) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            return Err(ChannelNameError::BadChar(c));
        }
        Ok(Self(name))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ChannelName {
    type Error = ChannelNameError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<ChannelName> for String {
    fn from(value: ChannelName) -> Self {
        value.0
    }
}

impl fmt::Display for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for ChannelName {
    type Err = ChannelNameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_url_safe_names() {
        for ok in ["x", "ops-1", "fire_dept.north", &"a".repeat(64)] {
            assert_eq!(ChannelName::new(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn rejects_bad_names() {
        assert_eq!(ChannelName::new(""), Err(ChannelNameError::Empty));
        assert_eq!(
            ChannelName::new("a".repeat(65)),
            Err(ChannelNameError::TooLong)
        );
        assert_eq!(ChannelName::new("a b"), Err(ChannelNameError::BadChar(' ')));
        assert_eq!(
            ChannelName::new("../x"),
            Err(ChannelNameError::BadChar('/'))
        );
        assert_eq!(ChannelName::new("é"), Err(ChannelNameError::BadChar('é')));
    }
}
