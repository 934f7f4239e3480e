//! A job's identity: a random id, and the options that define what it computes, recorded in
//! `job.json` when it starts. A restart with other options, or a sink holding another job's
//! rows, is an error that names the difference: a state dir or a sink never mixes two jobs.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::StateError;
use super::records::sync_dir;

/// The job file of a state dir.
const JOB_FILE: &str = "job.json";

/// What `job.json` records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    /// A random id, also written into the sink's progress row.
    pub id: String,
    /// When the job started, UTC.
    pub created: String,
    /// The options that define the job, by their command-line name (`--seed` → `42`).
    pub options: BTreeMap<String, String>,
}

impl JobRecord {
    /// A new job with `options`.
    pub fn new(options: BTreeMap<String, String>) -> JobRecord {
        JobRecord {
            id: format!("{:016x}", rand::random::<u64>()),
            created: chrono::Utc::now().format("%Y-%m-%d %H:%M:%S").to_string(),
            options,
        }
    }

    /// The job recorded in `root`, if any.
    pub fn read(root: &Path) -> Result<Option<JobRecord>, StateError> {
        let path = root.join(JOB_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|error| StateError::Corrupt {
                        path,
                        reason: error.to_string(),
                    })
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StateError::io(&path, source)),
        }
    }

    /// Writes the record into `root`, atomically.
    pub fn write(&self, root: &Path) -> Result<(), StateError> {
        let path = root.join(JOB_FILE);
        let temporary = root.join("job.json.tmp");
        let text = serde_json::to_string_pretty(self).expect("a job record serializes");
        std::fs::write(&temporary, text + "\n")
            .and_then(|()| std::fs::File::open(&temporary)?.sync_all())
            .map_err(|source| StateError::io(&temporary, source))?;
        std::fs::rename(&temporary, &path).map_err(|source| StateError::io(&path, source))?;
        sync_dir(root).map_err(|source| StateError::io(root, source))
    }

    /// How `options` differ from the job's, one phrase per option (empty: the same job).
    pub fn differences(&self, options: &BTreeMap<String, String>) -> Vec<String> {
        let mut names: Vec<&String> = self.options.keys().chain(options.keys()).collect();
        names.sort();
        names.dedup();
        let shown = |value: Option<&String>| match value {
            Some(value) if !value.is_empty() => value.clone(),
            _ => "(not given)".to_string(),
        };
        names
            .into_iter()
            .filter(|name| self.options.get(*name) != options.get(*name))
            .map(|name| {
                format!(
                    "{name} is {} in the job, {} now",
                    shown(self.options.get(name)),
                    shown(options.get(name))
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn differences_name_each_option_and_both_values() {
        let job = JobRecord::new(options(&[("--seed", "42"), ("--window", "5s")]));
        assert!(job.differences(&job.options).is_empty());
        let now = options(&[("--seed", "7"), ("--window", "5s"), ("--retention", "3h")]);
        assert_eq!(
            job.differences(&now),
            vec![
                "--retention is (not given) in the job, 3h now".to_string(),
                "--seed is 42 in the job, 7 now".to_string(),
            ]
        );
    }

    #[test]
    fn a_job_reads_back_as_written() {
        let dir = std::env::temp_dir().join(format!("gridflow-job-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(JobRecord::read(&dir).unwrap(), None);
        let job = JobRecord::new(options(&[("--seed", "42")]));
        job.write(&dir).unwrap();
        assert_eq!(JobRecord::read(&dir).unwrap(), Some(job));
        std::fs::write(dir.join(JOB_FILE), "{").unwrap();
        assert!(matches!(
            JobRecord::read(&dir),
            Err(StateError::Corrupt { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
