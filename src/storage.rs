//! Object storage: `s3://` (and `s3a://`), `gs://`, `az://` / `azure://` and `abfs(s)://` URIs
//! for input paths and for `output.dir`, through the `object_store` crate (polars' own).
//!
//! Credentials and region come from each provider's standard environment variables (for S3:
//! AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT_URL,
//! AWS_ALLOW_HTTP, ...; GOOGLE_SERVICE_ACCOUNT*, AZURE_STORAGE_*), then the job's
//! `storage_options`, which win. Their values are never logged nor written to the manifest.
//!
//! Every request has a connect timeout and a request timeout, and transient failures (5xx,
//! connection resets, throttling) are retried with exponential backoff for a bounded time: an
//! unreachable endpoint is an error naming the URI, not a hang.
//!
//! An object is read whole into memory when it is opened (the Parquet reader then decodes it
//! from there): object stores have no memory map. The last object read is kept, so that the
//! footer check and the batches of one file fetch it once.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::path::Path as ObjectPath;
use object_store::{
    BackoffConfig, ClientConfigKey, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig,
};
use serde::{Deserialize, Serialize};

/// The URI schemes cxmetrics reads and writes.
const SCHEMES: &[&str] = &["s3", "s3a", "gs", "az", "azure", "abfs", "abfss"];

/// Whether `spec` names an object in a store rather than a local path.
pub fn is_remote(spec: &str) -> bool {
    spec.split_once("://")
        .is_some_and(|(scheme, _)| SCHEMES.contains(&scheme.to_ascii_lowercase().as_str()))
}

/// `storage_options` of a job: the keys a job may set, by store. Values are strings (`true`,
/// `false` for the flags).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageOptions(pub BTreeMap<String, String>);

/// The keys `storage_options` accepts (every store ignores the ones that are not its own:
/// `region` and `path_style` are S3's).
pub const OPTION_KEYS: &[&str] = &[
    "endpoint",
    "region",
    "anonymous",
    "path_style",
    "allow_http",
    "access_key_id",
    "secret_access_key",
    "session_token",
];

/// The job's `storage_options`, set once per process: by a run or `validate` from the job
/// file, and by the child processes that read inputs from their request.
static OPTIONS: std::sync::RwLock<StorageOptions> =
    std::sync::RwLock::new(StorageOptions(BTreeMap::new()));

/// Sets the `storage_options` every later request of this process uses.
pub fn configure(options: &StorageOptions) {
    *OPTIONS.write().expect("storage options") = options.clone();
    STORES.lock().expect("stores").clear();
}

/// The store of each `scheme://bucket` this process has used, built once: its HTTP client and
/// connections serve every request to that bucket.
static STORES: Mutex<BTreeMap<String, Arc<dyn ObjectStore>>> = Mutex::new(BTreeMap::new());

/// The `storage_options` this process uses (for the child processes' requests).
pub fn configured() -> StorageOptions {
    OPTIONS.read().expect("storage options").clone()
}

/// A store and the object path within it.
struct Located {
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
    /// `scheme://bucket` (no trailing slash), to name objects back as URIs.
    root: String,
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime for object storage")
    })
}

/// Bounded retries: about a minute of exponential backoff for transient errors.
fn retry() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig::default(),
        max_retries: 5,
        retry_timeout: std::time::Duration::from_secs(60),
    }
}

fn flag(value: &str) -> bool {
    matches!(value.to_ascii_lowercase().as_str(), "true" | "1" | "yes")
}

/// The store of `uri` (built on first use) and the object path within it.
fn locate(uri: &str) -> Result<Located, String> {
    let (scheme, rest) = uri
        .split_once("://")
        .ok_or_else(|| format!("{uri}: not a URI"))?;
    let scheme = scheme.to_ascii_lowercase();
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(format!("{uri}: the URI names no bucket or container"));
    }
    let root = format!("{scheme}://{bucket}");
    let cached = STORES.lock().expect("stores").get(&root).cloned();
    let store = match cached {
        Some(store) => store,
        None => {
            let store = build(uri, &scheme, bucket)?;
            STORES
                .lock()
                .expect("stores")
                .insert(root.clone(), store.clone());
            store
        }
    };
    Ok(Located {
        store,
        path: ObjectPath::from(key.trim_end_matches('/')),
        root,
    })
}

/// A store for the bucket of `uri`, configured from the environment and `storage_options`.
fn build(uri: &str, scheme: &str, bucket: &str) -> Result<Arc<dyn ObjectStore>, String> {
    let options = configured();
    let bad = |e: object_store::Error| format!("{uri}: {e}");
    let timeouts = [
        (ClientConfigKey::ConnectTimeout, "10s"),
        (ClientConfigKey::Timeout, "300s"),
    ];
    let get = |k: &str| options.0.get(k).map(String::as_str);
    let store: Arc<dyn ObjectStore> = match scheme {
        "s3" | "s3a" => {
            let mut b = AmazonS3Builder::from_env()
                .with_url(format!("s3://{bucket}"))
                .with_retry(retry());
            for (k, v) in timeouts {
                b = b.with_config(AmazonS3ConfigKey::Client(k), v);
            }
            if let Some(v) = get("endpoint") {
                b = b.with_endpoint(v);
            }
            if let Some(v) = get("region") {
                b = b.with_region(v);
            }
            if let Some(v) = get("anonymous") {
                b = b.with_skip_signature(flag(v));
            }
            if let Some(v) = get("path_style") {
                b = b.with_virtual_hosted_style_request(!flag(v));
            }
            if let Some(v) = get("allow_http") {
                b = b.with_allow_http(flag(v));
            }
            if let Some(v) = get("access_key_id") {
                b = b.with_config(AmazonS3ConfigKey::AccessKeyId, v);
            }
            if let Some(v) = get("secret_access_key") {
                b = b.with_config(AmazonS3ConfigKey::SecretAccessKey, v);
            }
            if let Some(v) = get("session_token") {
                b = b.with_config(AmazonS3ConfigKey::Token, v);
            }
            Arc::new(b.build().map_err(bad)?)
        }
        "gs" => {
            let mut b = GoogleCloudStorageBuilder::from_env()
                .with_url(format!("gs://{bucket}"))
                .with_retry(retry());
            for (k, v) in timeouts {
                b = b.with_config(GoogleConfigKey::Client(k), v);
            }
            if let Some(v) = get("anonymous") {
                b = b.with_skip_signature(flag(v));
            }
            if let Some(v) = get("allow_http") {
                b = b.with_config(GoogleConfigKey::Client(ClientConfigKey::AllowHttp), v);
            }
            Arc::new(b.build().map_err(bad)?)
        }
        _ => {
            let mut b = MicrosoftAzureBuilder::from_env()
                .with_url(uri.to_string())
                .with_retry(retry());
            for (k, v) in timeouts {
                b = b.with_config(AzureConfigKey::Client(k), v);
            }
            if let Some(v) = get("endpoint") {
                b = b.with_endpoint(v.to_string());
            }
            if let Some(v) = get("anonymous") {
                b = b.with_skip_signature(flag(v));
            }
            if let Some(v) = get("allow_http") {
                b = b.with_allow_http(flag(v));
            }
            Arc::new(b.build().map_err(bad)?)
        }
    };
    Ok(store)
}

/// A readable message for an object store error on `uri`: what it was, not the client's
/// nested chain only.
fn describe(uri: &str, e: object_store::Error) -> String {
    match e {
        object_store::Error::NotFound { .. } => format!("{uri}: not found"),
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => {
            format!("{uri}: access denied ({e})")
        }
        _ => format!("{uri}: {e}"),
    }
}

/// The objects under `uri` taken as a folder: its `*.parquet` objects directly under it (not
/// recursive), as URIs sorted by name.
pub fn list_folder(uri: &str) -> Result<Vec<String>, String> {
    let loc = locate(uri)?;
    let prefix = (!loc.path.as_ref().is_empty()).then_some(&loc.path);
    let listed = runtime()
        .block_on(loc.store.list_with_delimiter(prefix))
        .map_err(|e| describe(uri, e))?;
    let mut out: Vec<String> = listed
        .objects
        .into_iter()
        .filter(|o| o.location.as_ref().ends_with(".parquet"))
        .map(|o| format!("{}/{}", loc.root, o.location))
        .collect();
    out.sort();
    Ok(out)
}

/// Every object under the prefix `uri` (recursive), as URIs sorted by name.
pub fn list_all(uri: &str) -> Result<Vec<String>, String> {
    let loc = locate(uri)?;
    let prefix = (!loc.path.as_ref().is_empty()).then_some(&loc.path);
    let objects: Vec<object_store::ObjectMeta> = runtime()
        .block_on(loc.store.list(prefix).try_collect())
        .map_err(|e| describe(uri, e))?;
    let mut out: Vec<String> = objects
        .into_iter()
        .map(|o| format!("{}/{}", loc.root, o.location))
        .collect();
    out.sort();
    Ok(out)
}

/// The objects a glob URI matches (`*`, `?` and `[...]` in its last parts), sorted by name.
pub fn glob(uri: &str) -> Result<Vec<String>, String> {
    let first = uri.find(['*', '?', '[']).unwrap_or(uri.len());
    let fixed = &uri[..uri[..first].rfind('/').map_or(first, |i| i + 1)];
    let pattern = glob::Pattern::new(uri).map_err(|e| format!("{uri}: invalid glob: {e}"))?;
    let options_match = glob::MatchOptions {
        require_literal_separator: true,
        ..Default::default()
    };
    Ok(list_all(fixed)?
        .into_iter()
        .filter(|o| pattern.matches_with(o, options_match))
        .collect())
}

/// Whether the object `uri` exists.
pub fn exists(uri: &str) -> Result<bool, String> {
    let loc = locate(uri)?;
    match runtime().block_on(loc.store.head(&loc.path)) {
        Ok(_) => Ok(true),
        Err(object_store::Error::NotFound { .. }) => Ok(false),
        Err(e) => Err(describe(uri, e)),
    }
}

/// The size of the object `uri` in bytes.
pub fn size(uri: &str) -> Result<u64, String> {
    let loc = locate(uri)?;
    runtime()
        .block_on(loc.store.head(&loc.path))
        .map(|m| m.size)
        .map_err(|e| describe(uri, e))
}

/// The last object read (a file's footer check and batches fetch it once); forgotten when this
/// process writes or deletes it.
static LAST: Mutex<Option<(String, Bytes)>> = Mutex::new(None);

fn forget(uri: &str) {
    let mut last = LAST.lock().expect("cache");
    if last.as_ref().is_some_and(|(u, _)| u == uri) {
        *last = None;
    }
}

/// The bytes of the object `uri` (the last object read is kept).
pub fn get(uri: &str) -> Result<Bytes, String> {
    if let Some((u, b)) = LAST.lock().expect("cache").as_ref() {
        if u == uri {
            return Ok(b.clone());
        }
    }
    let loc = locate(uri)?;
    let bytes = runtime()
        .block_on(async { loc.store.get(&loc.path).await?.bytes().await })
        .map_err(|e| describe(uri, e))?;
    *LAST.lock().expect("cache") = Some((uri.to_string(), bytes.clone()));
    Ok(bytes)
}

/// The bytes of `path`: an object when it is a URI, else a local file.
pub fn read(path: &std::path::Path) -> Result<Bytes, String> {
    match path.to_str().filter(|p| is_remote(p)) {
        Some(uri) => get(uri),
        None => std::fs::read(path)
            .map(Bytes::from)
            .map_err(|e| format!("{}: {e}", path.display())),
    }
}

/// Writes `bytes` as the object `uri` (a single PUT: readers see the old object or the new).
pub fn put(uri: &str, bytes: Vec<u8>) -> Result<(), String> {
    forget(uri);
    let loc = locate(uri)?;
    runtime()
        .block_on(loc.store.put(&loc.path, PutPayload::from(bytes)))
        .map(drop)
        .map_err(|e| describe(uri, e))
}

/// Deletes the objects `uris`.
pub fn delete(uris: &[String]) -> Result<(), String> {
    for uri in uris {
        forget(uri);
        let loc = locate(uri)?;
        match runtime().block_on(loc.store.delete(&loc.path)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(describe(uri, e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_uris_are_told_from_local_paths() {
        for uri in [
            "s3://b/k",
            "S3://b/k",
            "gs://b/x.parquet",
            "az://c/p",
            "abfss://c@a.dfs.core.windows.net/p",
        ] {
            assert!(is_remote(uri), "{uri}");
        }
        for local in [
            "data/o.parquet",
            "/abs/x",
            "file:///x",
            "http://h/x",
            "../s3://x",
        ] {
            assert!(!is_remote(local), "{local}");
        }
    }

    #[test]
    fn a_written_object_is_not_served_from_the_cache() {
        let uri = "s3://bucket/manifest.json";
        *LAST.lock().unwrap() = Some((uri.to_string(), Bytes::from_static(b"old")));
        forget("s3://bucket/other");
        assert!(LAST.lock().unwrap().is_some());
        forget(uri);
        assert!(LAST.lock().unwrap().is_none());
    }

    #[test]
    fn a_uri_without_a_bucket_is_refused() {
        let e = locate("s3:///key").err().unwrap();
        assert!(e.contains("names no bucket"), "{e}");
    }
}
