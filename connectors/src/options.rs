//! `key=value` options of sources and sinks, as they come from URIs.
//!
//! Owns what every connector's option parsing shares: key normalisation
//! (`maxFilesPerTrigger`, `max_files_per_trigger` and `max-files-per-trigger`
//! are one key, as Spark users write them), booleans, positive counts and
//! the error text naming the connector, the key, the value and what was
//! expected. Each connector keeps its own list of keys.

use runnel::{EngineError, Result};

/// Lower-cases a key and drops `_`, `-` and `.`.
pub(crate) fn normalise_key(k: &str) -> String {
    k.trim()
        .chars()
        .filter(|c| !matches!(c, '_' | '-' | '.'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// Parses option values for one kind of connector (named in errors).
#[derive(Clone, Copy, Debug)]
pub(crate) struct OptionParser {
    what: &'static str,
}

impl OptionParser {
    /// A parser whose errors name `what` ("file source", "console sink").
    pub(crate) const fn new(what: &'static str) -> OptionParser {
        OptionParser { what }
    }

    /// `WHAT option KEY = 'VALUE': expected EXPECTED`.
    pub(crate) fn err(&self, key: &str, value: &str, expected: &str) -> EngineError {
        EngineError::Plan(format!(
            "{} option {key} = '{value}': expected {expected}",
            self.what
        ))
    }

    /// An unknown key, with the valid ones listed.
    pub(crate) fn unknown(&self, key: &str, valid: &[&str]) -> EngineError {
        EngineError::Plan(format!(
            "unknown {} option '{key}'; valid options: {}",
            self.what,
            valid.join(", ")
        ))
    }

    /// `true|yes|on|1` or `false|no|off|0`.
    pub(crate) fn bool(&self, key: &str, v: &str) -> Result<bool> {
        match v.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Ok(true),
            "false" | "no" | "off" | "0" => Ok(false),
            _ => Err(self.err(key, v, "true or false")),
        }
    }

    /// A whole number greater than zero.
    pub(crate) fn count<T>(&self, key: &str, v: &str) -> Result<T>
    where
        T: std::str::FromStr + PartialOrd + Default,
    {
        v.trim()
            .parse::<T>()
            .ok()
            .filter(|n| *n > T::default())
            .ok_or_else(|| self.err(key, v, "a positive whole number"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_parse_the_spark_ways() {
        assert_eq!(normalise_key(" maxFilesPerTrigger"), "maxfilespertrigger");
        assert_eq!(normalise_key("max-files_per.trigger"), "maxfilespertrigger");
        let p = OptionParser::new("test sink");
        assert!(p.bool("k", "Yes").unwrap());
        assert!(!p.bool("k", "0").unwrap());
        assert_eq!(p.count::<u64>("n", " 12 ").unwrap(), 12);
        let err = p.count::<usize>("n", "0").unwrap_err().to_string();
        assert_eq!(
            err,
            "invalid query: test sink option n = '0': expected a positive whole number"
        );
        assert!(p
            .unknown("x", &["a", "b"])
            .to_string()
            .contains("valid options: a, b"));
    }
}
