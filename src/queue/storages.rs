//! Named storages of the worker config: a job names one (`"storage": {"name": "archive"}`) or
//! carries its own; a job that says nothing about storage goes to the default, if one is set.

use crate::job::{Problem, StorageConfig, StorageType};
use std::collections::BTreeMap;

/// At most this many named storages per worker.
pub const MOST_NAMED: usize = 10;

/// Replaces the job's storage by the named one it asks for (its own `path` prefix is kept), or
/// by the default when the job gives none.
pub fn resolve(
    storage: &mut StorageConfig,
    named: &BTreeMap<String, StorageConfig>,
    default: Option<&str>,
) -> Result<(), Problem> {
    let carries_its_own = storage.storage_type != StorageType::Local || storage.bucket.is_some();
    let wanted = match (&storage.name, default) {
        (Some(name), _) if named.contains_key(name) => name.clone(),
        (Some(name), _) if !carries_its_own => {
            let known: Vec<&str> = named.keys().map(String::as_str).collect();
            return Err(Problem {
                path: "storage.name".into(),
                message: format!(
                    "expected a storage of the worker ({}); got {name:?}",
                    known.join(", ")
                ),
            });
        }
        (None, Some(default)) if !carries_its_own => default.to_owned(),
        _ => return Ok(()),
    };
    let Some(chosen) = named.get(&wanted) else {
        return Err(Problem {
            path: "storage".into(),
            message: format!("the worker's default storage {wanted:?} is not configured"),
        });
    };
    let path = storage.path.take();
    *storage = chosen.clone();
    storage.name = Some(wanted);
    if path.is_some() {
        storage.path = path;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn storage(value: serde_json::Value) -> StorageConfig {
        serde_json::from_value(value).unwrap()
    }

    fn named() -> BTreeMap<String, StorageConfig> {
        BTreeMap::from([
            (
                "archive".to_owned(),
                storage(json!({ "storage_type": "local", "path": "archive/" })),
            ),
            (
                "s3".to_owned(),
                storage(json!({ "storage_type": "s3", "bucket": "b",
                "aws_s3": { "s3_region": "eu-west-1" } })),
            ),
        ])
    }

    #[test]
    fn a_named_storage_replaces_the_jobs_keeping_its_prefix() {
        let mut job = storage(json!({ "name": "s3", "path": "tenant-1/" }));
        resolve(&mut job, &named(), None).unwrap();
        assert_eq!(job.storage_type, StorageType::S3);
        assert_eq!(job.bucket.as_deref(), Some("b"));
        assert_eq!(job.path.as_deref(), Some("tenant-1/"));
        let mut job = storage(json!({ "name": "archive" }));
        resolve(&mut job, &named(), None).unwrap();
        assert_eq!(job.path.as_deref(), Some("archive/"));
    }

    #[test]
    fn the_default_applies_only_to_jobs_without_storage_of_their_own() {
        let mut job = StorageConfig::default();
        resolve(&mut job, &named(), Some("s3")).unwrap();
        assert_eq!(job.name.as_deref(), Some("s3"));
        let mut own = storage(json!({ "storage_type": "s3", "bucket": "mine",
            "aws_s3": { "s3_region": "us-east-1" } }));
        resolve(&mut own, &named(), Some("archive")).unwrap();
        assert_eq!(own.bucket.as_deref(), Some("mine"));
    }

    #[test]
    fn an_unknown_name_is_a_problem_naming_the_field() {
        let mut job = storage(json!({ "name": "nope" }));
        let problem = resolve(&mut job, &named(), None).unwrap_err();
        assert_eq!(problem.path, "storage.name");
        assert!(problem.message.contains("archive, s3"), "{}", problem.message);
    }
}
