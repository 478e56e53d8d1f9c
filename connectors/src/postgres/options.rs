//! The sink's URI: where the server is, which table, and the guarantees.

use std::collections::BTreeMap;

use runnel::{EngineError, Result};

use crate::options::{normalise_key, OptionParser};

const PARSER: OptionParser = OptionParser::new("postgres sink");
const KEYS: [&str; 7] = [
    "table",
    "key",
    "create",
    "fillfactor",
    "delivery",
    "query_id",
    "bad_records",
];

/// The fill factor of the keyed tables the sink creates: half of each page
/// is left free, room for a new version of every row on it, so that an
/// epoch updating every key still updates in place (HOT).
pub(super) const DEFAULT_FILLFACTOR: u8 = 50;

/// What the sink promises when a query restarts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Delivery {
    /// Every epoch's rows are in the table once: an epoch the table already
    /// holds is skipped on replay (micro-batch mode); in continuous mode each
    /// epoch is prepared and committed once the checkpoint holds it.
    #[default]
    ExactlyOnce,
    /// An epoch replayed after a crash is written again: no loss, possible
    /// duplicates (keyed results are upserts, so they end equal). In
    /// continuous mode rows are committed in groups as they arrive (within
    /// a millisecond while rows keep coming), not at the end of their epoch.
    AtLeastOnce,
}

/// Where and how the sink writes.
#[derive(Clone, Debug, PartialEq)]
pub struct PostgresSinkOptions {
    /// `host`.
    pub host: String,
    /// `port` (5432 when the URI has none).
    pub port: u16,
    /// The role to connect as.
    pub user: String,
    /// The database.
    pub database: String,
    /// The target table (`schema.table` is allowed).
    pub table: String,
    /// Key columns for update and complete mode, when not the query's own.
    pub key: Option<Vec<String>>,
    /// Create the table from the query's schema when it does not exist.
    pub create: bool,
    /// The fill factor (percent, 10 to 100) of a keyed table the sink
    /// creates (update and complete mode): the room left on each page lets
    /// an upsert put a row's new version beside the old one (a HOT update,
    /// no new index entry). An existing table keeps its own.
    pub fillfactor: u8,
    /// The delivery guarantee.
    pub delivery: Delivery,
    /// The id the progress row is kept under (default: the query's id).
    pub query_id: Option<String>,
    /// Where rows the server rejects go (`bad_records=dead-letter:PATH`);
    /// `None` (`bad_records=fail`, the default): the query fails.
    pub dead_letter: Option<std::path::PathBuf>,
}

impl PostgresSinkOptions {
    /// Parses the part after `postgres:` (`//USER@HOST:PORT/DB`) and the
    /// URI's options.
    pub fn parse(location: &str, options: &BTreeMap<String, String>) -> Result<Self> {
        let bad = |why: &str| {
            EngineError::Plan(format!(
                "postgres sink: '{location}' {why}; write postgres://USER@HOST:PORT/DB?table=T"
            ))
        };
        let rest = location
            .strip_prefix("//")
            .ok_or_else(|| bad("does not start with //"))?;
        let (authority, database) = rest
            .split_once('/')
            .ok_or_else(|| bad("names no database"))?;
        let (user, hostport) = authority
            .rsplit_once('@')
            .ok_or_else(|| bad("names no user (USER@HOST)"))?;
        if user.contains(':') {
            return Err(EngineError::Plan(
                "postgres sink: put the password in PGPASSWORD, not in the URI".into(),
            ));
        }
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse::<u16>()
                    .map_err(|_| bad(&format!("has port '{p}', not a number")))?,
            ),
            None => (hostport, 5432),
        };
        if host.is_empty() || database.is_empty() || user.is_empty() {
            return Err(bad("lacks a user, host or database"));
        }
        let mut out = PostgresSinkOptions {
            host: host.to_string(),
            port,
            user: user.to_string(),
            database: database.to_string(),
            table: String::new(),
            key: None,
            create: false,
            fillfactor: DEFAULT_FILLFACTOR,
            delivery: Delivery::ExactlyOnce,
            query_id: None,
            dead_letter: None,
        };
        for (k, v) in options {
            match normalise_key(k).as_str() {
                "table" => out.table = v.trim().to_string(),
                "key" => {
                    let cols: Vec<String> = v
                        .split(',')
                        .map(|c| c.trim().to_string())
                        .filter(|c| !c.is_empty())
                        .collect();
                    if cols.is_empty() {
                        return Err(PARSER.err(k, v, "column names separated by commas"));
                    }
                    out.key = Some(cols);
                }
                "create" => out.create = PARSER.bool(k, v)?,
                "fillfactor" => {
                    out.fillfactor = v
                        .trim()
                        .parse::<u8>()
                        .ok()
                        .filter(|f| (10..=100).contains(f))
                        .ok_or_else(|| PARSER.err(k, v, "a percentage from 10 to 100"))?
                }
                "delivery" => {
                    out.delivery = match normalise_key(v).as_str() {
                        "exactlyonce" => Delivery::ExactlyOnce,
                        "atleastonce" => Delivery::AtLeastOnce,
                        _ => return Err(PARSER.err(k, v, "exactly_once or at_least_once")),
                    }
                }
                "queryid" => out.query_id = Some(v.trim().to_string()),
                "badrecords" => {
                    let v = v.trim();
                    out.dead_letter = match v.split_once(':') {
                        _ if normalise_key(v) == "fail" => None,
                        Some((kind, path))
                            if normalise_key(kind) == "deadletter" && !path.is_empty() =>
                        {
                            Some(std::path::PathBuf::from(path))
                        }
                        _ => return Err(PARSER.err(k, v, "fail or dead-letter:PATH")),
                    };
                }
                _ => return Err(PARSER.unknown(k, &KEYS)),
            }
        }
        if out.table.is_empty() {
            return Err(bad("names no table (?table=T)"));
        }
        Ok(out)
    }

    /// The password to connect with: `PGPASSWORD`, else the password
    /// file's line for this server, database and user (`PGPASSFILE`, else
    /// `~/.pgpass`); an error names a password file others can read.
    pub fn password(&self) -> std::result::Result<Option<String>, String> {
        if let Ok(p) = std::env::var("PGPASSWORD") {
            return Ok(Some(p));
        }
        match super::pgpass::default_path() {
            Some(path) => {
                super::pgpass::lookup(&path, &self.host, self.port, &self.database, &self.user)
            }
            None => Ok(None),
        }
    }

    /// The client configuration for this server: host, port, user,
    /// database, `application_name`, a 10 s connect timeout and `password`.
    pub fn client_config(&self, application: &str, password: Option<&str>) -> postgres::Config {
        let mut config = postgres::Config::new();
        config
            .host(&self.host)
            .port(self.port)
            .user(&self.user)
            .dbname(&self.database)
            .application_name(application)
            .connect_timeout(std::time::Duration::from_secs(10));
        if let Some(p) = password {
            config.password(p);
        }
        config
    }

    /// `postgres://USER@HOST:PORT/DB table T`: what progress reports show.
    pub fn describe(&self) -> String {
        format!(
            "postgres://{}@{}:{}/{} table {}",
            self.user, self.host, self.port, self.database, self.table
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_uri_names_server_table_and_guarantee() {
        let o = PostgresSinkOptions::parse(
            "//app@127.0.0.1:5433/shop",
            &opts(&[
                ("table", "daily"),
                ("key", "day, customer"),
                ("create", "true"),
            ]),
        )
        .unwrap();
        assert_eq!(
            (o.host.as_str(), o.port, o.user.as_str()),
            ("127.0.0.1", 5433, "app")
        );
        assert_eq!(o.database, "shop");
        assert_eq!(o.key, Some(vec!["day".into(), "customer".into()]));
        assert!(o.create);
        assert_eq!(o.fillfactor, DEFAULT_FILLFACTOR);
        assert_eq!(o.delivery, Delivery::ExactlyOnce);
        assert_eq!(
            o.describe(),
            "postgres://app@127.0.0.1:5433/shop table daily"
        );
        let o = PostgresSinkOptions::parse(
            "//app@db/shop",
            &opts(&[("table", "t"), ("delivery", "at_least_once")]),
        )
        .unwrap();
        assert_eq!((o.port, o.delivery), (5432, Delivery::AtLeastOnce));
        let o = PostgresSinkOptions::parse(
            "//app@db/shop",
            &opts(&[("table", "t"), ("fillfactor", "90")]),
        )
        .unwrap();
        assert_eq!(o.fillfactor, 90);
    }

    #[test]
    fn bad_uris_say_what_is_wrong() {
        let err = |loc: &str, pairs: &[(&str, &str)]| {
            PostgresSinkOptions::parse(loc, &opts(pairs))
                .unwrap_err()
                .to_string()
        };
        assert!(err("//app:secret@h/db", &[("table", "t")]).contains("PGPASSWORD"));
        assert!(err("//app@h/db", &[]).contains("names no table"));
        assert!(err("//h/db", &[("table", "t")]).contains("names no user"));
        assert!(err("//app@h:x/db", &[("table", "t")]).contains("port 'x'"));
        assert!(err("//app@h/db", &[("table", "t"), ("colour", "red")])
            .contains("unknown postgres sink option 'colour'"));
        assert!(err("//app@h/db", &[("table", "t"), ("delivery", "maybe")])
            .contains("exactly_once or at_least_once"));
        assert!(err("//app@h/db", &[("table", "t"), ("fillfactor", "5")])
            .contains("a percentage from 10 to 100"));
        assert!(
            err("//app@h/db", &[("table", "t"), ("bad_records", "skip")])
                .contains("fail or dead-letter:PATH")
        );
        let o = PostgresSinkOptions::parse(
            "//app@h/db",
            &opts(&[
                ("table", "t"),
                ("bad_records", "dead-letter:/tmp/x/bad.jsonl"),
            ]),
        )
        .unwrap();
        assert_eq!(o.dead_letter, Some("/tmp/x/bad.jsonl".into()));
    }
}
