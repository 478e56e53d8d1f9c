//! What the PostgreSQL harnesses share: the server's settings they print
//! beside their figures, and the sink's location part of a server URL.

use postgres::Client;

/// `name=value` of each setting, joined by commas (`SHOW name` each).
pub fn settings(client: &mut Client, names: &[&str]) -> Result<String, postgres::Error> {
    let shown: Vec<String> = names
        .iter()
        .map(|s| {
            let v: String = client.query_one(&format!("SHOW {s}"), &[])?.get(0);
            Ok(format!("{s}={v}"))
        })
        .collect::<Result<_, postgres::Error>>()?;
    Ok(shown.join(", "))
}

/// The part of `postgres://USER@HOST:PORT/DB` the sink's options parse
/// (after the scheme).
pub fn sink_location(url: &str) -> Result<&str, String> {
    url.strip_prefix("postgres:")
        .or_else(|| url.strip_prefix("postgresql:"))
        .ok_or_else(|| format!("{url} is not a postgres://USER@HOST:PORT/DB URL"))
}
