//! Where a sink writes: `--sink URL` (`sqlite://PATH`, `postgresql://…` or `none`), with
//! `DATABASE_URL` and the embedded SQLite file as defaults.

use std::path::PathBuf;

use thiserror::Error;

/// Where a sink writes, from `--sink URL`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SinkTarget {
    /// `sqlite://PATH`: an embedded database file (the default, `./gridflow.db`).
    Sqlite(PathBuf),
    /// `postgresql://…`: a PostgreSQL server, the tables in a schema (`--sink-schema`).
    Postgres(String),
    /// `none`: the tables go nowhere (benchmarks of the dataflow alone).
    None,
}

/// The file `gridflow run` writes when no `--sink` is given.
pub const DEFAULT_SQLITE_PATH: &str = "gridflow.db";

impl SinkTarget {
    /// The sink `--sink` names; without it, the `DATABASE_URL` environment variable if set and
    /// not empty, else the SQLite file `gridflow.db`.
    pub fn resolve(sink: Option<&str>) -> Result<SinkTarget, TargetError> {
        match sink {
            Some(url) => SinkTarget::parse(url),
            None => match std::env::var("DATABASE_URL") {
                Ok(url) if !url.is_empty() => SinkTarget::parse(&url)
                    .map_err(|error| TargetError::FromEnvironment(Box::new(error))),
                _ => Ok(SinkTarget::Sqlite(DEFAULT_SQLITE_PATH.into())),
            },
        }
    }

    /// The sink as a person may see it: a PostgreSQL URL's password left out.
    pub fn redacted(&self) -> String {
        match self {
            SinkTarget::Sqlite(path) => format!("sqlite://{}", path.display()),
            SinkTarget::None => "none".to_string(),
            SinkTarget::Postgres(url) => {
                let Some((scheme, rest)) = url.split_once("://") else {
                    return url.clone();
                };
                match rest.split_once('@') {
                    Some((credentials, host)) => {
                        let user = credentials.split(':').next().unwrap_or_default();
                        let hidden = if credentials.contains(':') {
                            ":***"
                        } else {
                            ""
                        };
                        format!("{scheme}://{user}{hidden}@{host}")
                    }
                    None => url.clone(),
                }
            }
        }
    }

    /// Parses a sink URL.
    pub fn parse(url: &str) -> Result<SinkTarget, TargetError> {
        if url == "none" {
            return Ok(SinkTarget::None);
        }
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(TargetError::NoFile(url.to_string()));
            }
            return Ok(SinkTarget::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgresql://") || url.starts_with("postgres://") {
            return Ok(SinkTarget::Postgres(url.to_string()));
        }
        Err(TargetError::NotASinkUrl(url.to_string()))
    }
}

/// A `--sink` (or `DATABASE_URL`) that names no sink.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TargetError {
    #[error("{0:?} names no file: use sqlite://PATH")]
    NoFile(String),
    #[error("{0:?} is not a sink URL: use sqlite://PATH, postgresql://… or none")]
    NotASinkUrl(String),
    #[error("DATABASE_URL: {0}")]
    FromEnvironment(Box<TargetError>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sink_urls() {
        assert_eq!(
            SinkTarget::parse("sqlite://a/b.db"),
            Ok(SinkTarget::Sqlite("a/b.db".into()))
        );
        assert_eq!(SinkTarget::parse("none"), Ok(SinkTarget::None));
        assert!(SinkTarget::parse("sqlite://").is_err());
        assert!(SinkTarget::parse("mysql://x").is_err());
        let secret = SinkTarget::parse("postgresql://u:secret@h:5432/db").unwrap();
        assert_eq!(secret.redacted(), "postgresql://u:***@h:5432/db");
        assert_eq!(
            SinkTarget::parse("postgresql://u@h/db"),
            Ok(SinkTarget::Postgres("postgresql://u@h/db".into()))
        );
    }
}
