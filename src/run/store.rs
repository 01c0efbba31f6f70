//! Data roots in object stores: `s3://bucket/prefix`, `gs://bucket/prefix`,
//! `az://container/prefix`, read through object_store's own stores with the
//! credentials and endpoint of the usual environment variables
//! (`AWS_ACCESS_KEY_ID`, `AWS_ENDPOINT_URL`, `GOOGLE_APPLICATION_CREDENTIALS`,
//! `AZURE_STORAGE_ACCOUNT_NAME`, …).
//!
//! A table is the `.parquet` objects under `<root>/<source path>/`, listed
//! once per run as a folder is walked (names starting with `.` or `_` are
//! not part of it, at any depth), each checked against the model from its
//! footer before a row is read. An object's fingerprint is its ETag (and
//! version, where the store keeps versions) with its size: reading every
//! object's bytes to hash them would cost a second download of the data.
//!
//! Every request has short timeouts and few retries, so an unreachable
//! endpoint, a missing bucket or refused credentials are reported within
//! seconds, not after the client's default retries (minutes).

use std::sync::Arc;
use std::time::Duration;

use datafusion::parquet::arrow::arrow_reader::ArrowReaderMetadata;
use datafusion::parquet::file::metadata::ParquetMetaDataReader;
use datafusion::prelude::SessionContext;
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ClientConfigKey, ObjectMeta, ObjectStore, ObjectStoreExt, RetryConfig};

use super::files::{FileFact, check_schema};
use crate::catalog::{Catalog, SourceId};
use crate::error::{CanonError, DataLocation, Result};
use crate::spec::SourceSpec;
use crate::yaml_path;

/// Whether `text` names an object-store location (`scheme://…`) rather than
/// a local folder.
pub fn is_url(text: &str) -> bool {
    text.split_once("://").is_some_and(|(scheme, _)| {
        !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric())
    })
}

/// A data root in an object store.
pub struct StoreRoot {
    /// `scheme://bucket/prefix`, without a trailing slash: how the root is
    /// named in messages, lineage, the cache and the row-count state.
    url: String,
    /// `scheme://bucket`: what the engine's object-store registry knows the
    /// store by.
    base: url::Url,
    prefix: ObjectPath,
    store: Arc<dyn ObjectStore>,
}

impl std::fmt::Debug for StoreRoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url)
    }
}

/// The timeouts every request to a store runs with: an endpoint that does
/// not accept connections fails within seconds; a request that connects is
/// given object_store's usual 30 s to finish (a ranged read of a large
/// column chunk over a slow link takes a while). [`StoreRoot::probe`] has
/// its own deadline.
const CONNECT_TIMEOUT: &str = "3s";
const REQUEST_TIMEOUT: &str = "30s";

/// How long the first question to a store may take in all, retries
/// included, before the run stops with an error naming the endpoint.
const PROBE_DEADLINE: Duration = Duration::from_secs(20);

/// Retries of a failed request: a few, within 10 s in all (object_store's
/// default retries for three minutes).
fn retries() -> RetryConfig {
    RetryConfig {
        max_retries: 2,
        retry_timeout: Duration::from_secs(10),
        ..RetryConfig::default()
    }
}

impl StoreRoot {
    /// The store behind `text` (`s3://…`, `gs://…`, `az://…`), configured
    /// from the environment. Nothing is requested yet: see [`Self::probe`].
    pub fn open(text: &str) -> Result<StoreRoot> {
        let bad = |why: String| {
            CanonError::request(format!(
                "data root `{text}`: {why} (write it as s3://BUCKET/PREFIX, gs://BUCKET/PREFIX \
                 or az://CONTAINER/PREFIX, or give a local folder)"
            ))
        };
        let parsed = url::Url::parse(text).map_err(|e| bad(format!("not a URL: {e}")))?;
        let known = ["s3", "s3a", "gs", "az", "adl", "azure", "abfs", "abfss"];
        if !known.contains(&parsed.scheme()) {
            return Err(bad(format!(
                "`{}://` is not a store canon reads data from",
                parsed.scheme()
            )));
        }
        let (scheme, prefix) = object_store::ObjectStoreScheme::parse(&parsed)
            .map_err(|e| bad(format!("not an object-store URL: {e}")))?;
        let prefix = ObjectPath::parse(prefix.as_ref())
            .map_err(|e| bad(format!("its path is not a store path: {e}")))?;
        let host = parsed
            .host_str()
            .ok_or_else(|| bad("it names no bucket".into()))?;
        let base = url::Url::parse(&format!("{}://{host}", parsed.scheme()))
            .map_err(|e| bad(format!("not a URL: {e}")))?;
        let store: Arc<dyn ObjectStore> = match scheme {
            object_store::ObjectStoreScheme::AmazonS3 => {
                use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey as Key};
                AmazonS3Builder::from_env()
                    .with_url(text)
                    .with_allow_http(plain_http_allowed("AWS"))
                    .with_config(
                        Key::Client(ClientConfigKey::ConnectTimeout),
                        CONNECT_TIMEOUT,
                    )
                    .with_config(Key::Client(ClientConfigKey::Timeout), REQUEST_TIMEOUT)
                    .with_retry(retries())
                    .build()
                    .map(|s| Arc::new(s) as Arc<dyn ObjectStore>)
            }
            object_store::ObjectStoreScheme::GoogleCloudStorage => {
                use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey as Key};
                GoogleCloudStorageBuilder::from_env()
                    .with_url(text)
                    .with_config(
                        Key::Client(ClientConfigKey::ConnectTimeout),
                        CONNECT_TIMEOUT,
                    )
                    .with_config(Key::Client(ClientConfigKey::Timeout), REQUEST_TIMEOUT)
                    .with_retry(retries())
                    .build()
                    .map(|s| Arc::new(s) as Arc<dyn ObjectStore>)
            }
            object_store::ObjectStoreScheme::MicrosoftAzure => {
                use object_store::azure::{AzureConfigKey as Key, MicrosoftAzureBuilder};
                MicrosoftAzureBuilder::from_env()
                    .with_url(text)
                    .with_allow_http(plain_http_allowed("AZURE"))
                    .with_config(
                        Key::Client(ClientConfigKey::ConnectTimeout),
                        CONNECT_TIMEOUT,
                    )
                    .with_config(Key::Client(ClientConfigKey::Timeout), REQUEST_TIMEOUT)
                    .with_retry(retries())
                    .build()
                    .map(|s| Arc::new(s) as Arc<dyn ObjectStore>)
            }
            _ => {
                return Err(bad(format!(
                    "`{}://` is not a store canon reads data from",
                    parsed.scheme()
                )));
            }
        }
        .map_err(|e| bad(format!("cannot configure its store: {e}")))?;
        let url = match prefix.as_ref() {
            "" => base.as_str().trim_end_matches('/').to_string(),
            p => format!("{}/{p}", base.as_str().trim_end_matches('/')),
        };
        Ok(StoreRoot {
            url,
            base,
            prefix,
            store,
        })
    }

    /// `scheme://bucket/prefix`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The store itself (for a run's own reads and tests).
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    /// Makes the store known to `ctx`'s engine, which reads the objects a
    /// source's listing names through it.
    pub fn register(&self, ctx: &SessionContext) {
        ctx.register_object_store(&self.base, self.store.clone());
    }

    /// Asks the store for the root's first level, so that an endpoint that
    /// does not answer, a bucket that does not exist, refused credentials or
    /// an empty root are each reported once, clearly, before anything is
    /// planned (exit 2, as for a local data root that does not exist).
    pub async fn probe(&self) -> Result<()> {
        let listed = tokio::time::timeout(
            PROBE_DEADLINE,
            self.store.list_with_delimiter(Some(&self.prefix)),
        )
        .await
        .map_err(|_| {
            CanonError::request(format!(
                "data root {}: the store's endpoint did not answer within {} s (is the \
                 endpoint right, and reachable?)",
                self.url,
                PROBE_DEADLINE.as_secs()
            ))
        })?
        .map_err(|e| CanonError::request(self.explain(&e, &self.url)))?;
        if listed.objects.is_empty() && listed.common_prefixes.is_empty() {
            return Err(CanonError::request(format!(
                "data root {} holds no objects (is the prefix right?)",
                self.url
            )));
        }
        Ok(())
    }

    /// What went wrong asking the store about `what`, with what to do.
    fn explain(&self, e: &object_store::Error, what: &str) -> String {
        let text = e.to_string();
        let bucket = self.base.host_str().unwrap_or_default();
        let hint = match e {
            object_store::Error::NotFound { .. } => {
                format!("not found: does the bucket `{bucket}` exist?")
            }
            object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. } => format!(
                "access refused: check the credentials in the environment ({})",
                credentials_hint(self.base.scheme())
            ),
            _ if text.contains("NoSuchBucket") || text.contains("ContainerNotFound") => {
                format!("the bucket `{bucket}` does not exist")
            }
            _ if text.contains("InvalidAccessKeyId")
                || text.contains("SignatureDoesNotMatch")
                || text.contains("AccessDenied")
                || text.contains("403 Forbidden")
                || text.contains("401 Unauthorized") =>
            {
                format!(
                    "access refused: check the credentials in the environment ({})",
                    credentials_hint(self.base.scheme())
                )
            }
            _ if text.contains("builder error") => "the endpoint is plain http, which canon \
                 allows only on this machine's loopback: set AWS_ALLOW_HTTP=true (or \
                 AZURE_ALLOW_HTTP=true) to read from it anyway"
                .to_string(),
            _ if text.contains("error sending request")
                || text.contains("onnect")
                || text.contains("timed out")
                || text.contains("dns") =>
            {
                "the store's endpoint does not answer (is the endpoint right, and reachable?)"
                    .to_string()
            }
            _ => "the store refused the request".to_string(),
        };
        format!(
            "data root {}: cannot read {what}: {hint}\n  ({text})",
            self.url
        )
    }

    /// The prefix of source `id`: the model's `path` under the root, which
    /// must stay inside it. A store has no links, so the check is on the
    /// path's own segments: no `..`, `.`, empty segment or leading `/`.
    pub fn table_prefix(&self, catalog: &Catalog, id: SourceId) -> Result<ObjectPath> {
        let (model, spec) = catalog.source(id);
        let outside = spec.path.starts_with('/')
            || spec
                .path
                .split('/')
                .any(|s| s == ".." || s == "." || s.is_empty());
        if outside {
            return Err(CanonError::request(format!(
                "{}: source {}/{}: path `{}` does not name a prefix inside the data root {}: \
                 a source's path in an object store is relative segments, without `..`, `.` \
                 or empty ones",
                model.at(&yaml_path!["sources", id.index, "path"]),
                model.spec.system,
                spec.name,
                spec.path,
                self.url
            )));
        }
        let mut prefix = self.prefix.clone();
        for segment in spec.path.split('/') {
            prefix = prefix.join(segment);
        }
        Ok(prefix)
    }

    /// The objects of source `id`, sorted by name: every `.parquet` object
    /// under its prefix whose name, and every folder of which under the
    /// prefix, starts with neither `.` nor `_`. This list is the table.
    pub async fn table_objects(&self, catalog: &Catalog, id: SourceId) -> Result<Vec<ObjectMeta>> {
        let (model, spec) = catalog.source(id);
        let location = DataLocation {
            system: model.spec.system.clone(),
            table: spec.name.clone(),
            file: None,
            column: None,
        };
        let prefix = self.table_prefix(catalog, id)?;
        let named = self.name(&prefix);
        let listed: Vec<ObjectMeta> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| CanonError::data(location.clone(), self.explain(&e, &named)))?;
        let mut out: Vec<ObjectMeta> = listed
            .into_iter()
            .filter(|meta| {
                let Some(parts) = meta.location.prefix_match(&prefix) else {
                    return false;
                };
                let parts: Vec<_> = parts.collect();
                parts
                    .iter()
                    .all(|p| !p.as_ref().starts_with('.') && !p.as_ref().starts_with('_'))
                    && parts
                        .last()
                        .is_some_and(|p| p.as_ref().ends_with(".parquet"))
            })
            .collect();
        out.sort_by(|a, b| a.location.cmp(&b.location));
        if out.is_empty() {
            return Err(CanonError::data(
                location,
                format!("{named}/ holds no .parquet objects"),
            ));
        }
        Ok(out)
    }

    /// Reads one object's footer and checks its columns against the model,
    /// as [`super::files::inspect`] does for a file.
    pub async fn inspect(
        &self,
        meta: &ObjectMeta,
        source: &SourceSpec,
        location: &DataLocation,
    ) -> Result<FileFact> {
        let path = self.name(&meta.location);
        let here = |column: Option<&str>| DataLocation {
            file: Some(path.clone()),
            column: column.map(str::to_string),
            ..location.clone()
        };
        let footer = self.footer(meta).await.map_err(|why| match why {
            Footer::Store(e) => CanonError::data(here(None), self.explain(&e, &path)),
            Footer::Damaged(why) => {
                CanonError::data(here(None), format!("not a readable Parquet object: {why}"))
            }
        })?;
        let builder =
            ArrowReaderMetadata::try_new(Arc::new(footer), Default::default()).map_err(|e| {
                CanonError::data(here(None), format!("not a readable Parquet object: {e}"))
            })?;
        let rows = builder.metadata().file_metadata().num_rows();
        check_schema(builder.schema(), source, &here)?;
        Ok(FileFact {
            path,
            bytes: meta.size,
            rows,
            sha256: String::new(),
            etag: meta.e_tag.clone(),
            version: meta.version.clone(),
        })
    }

    /// An object's Parquet footer, read with one ranged GET of its last
    /// 64 KiB (footers are rarely larger), and a second for the rest of a
    /// larger one.
    async fn footer(
        &self,
        meta: &ObjectMeta,
    ) -> std::result::Result<datafusion::parquet::file::metadata::ParquetMetaData, Footer> {
        const TAIL: u64 = 64 << 10;
        let size = meta.size;
        if size < 12 {
            return Err(Footer::Damaged(format!(
                "{size} bytes, too short for a Parquet file"
            )));
        }
        let tail_len = size.min(TAIL);
        let tail = self
            .store
            .get_range(&meta.location, size - tail_len..size)
            .await
            .map_err(Footer::Store)?;
        let end = tail.len();
        if end < 8 || &tail[end - 4..] != b"PAR1" {
            return Err(Footer::Damaged(
                "it does not end with PAR1 (not Parquet, cut short, or an encrypted footer)".into(),
            ));
        }
        let length = u64::from(u32::from_le_bytes(
            tail[end - 8..end - 4].try_into().expect("four bytes"),
        ));
        if length + 12 > size {
            return Err(Footer::Damaged(format!(
                "its footer claims {length} bytes of a {size}-byte file"
            )));
        }
        let bytes = if length + 8 <= tail_len {
            let start = (tail_len - 8 - length) as usize;
            tail.slice(start..end - 8)
        } else {
            self.store
                .get_range(&meta.location, size - 8 - length..size - 8)
                .await
                .map_err(Footer::Store)?
        };
        ParquetMetaDataReader::decode_metadata(&bytes).map_err(|e| Footer::Damaged(e.to_string()))
    }

    /// The URL of the object at `location`, as lineage and messages name it.
    pub fn name(&self, location: &ObjectPath) -> String {
        format!(
            "{}/{}",
            self.base.as_str().trim_end_matches('/'),
            location.as_ref()
        )
    }
}

/// Why an object's footer could not be read.
enum Footer {
    /// The store did not give the bytes.
    Store(object_store::Error),
    /// The bytes are not a Parquet footer.
    Damaged(String),
}

/// Plain http for a store's endpoint: when the environment allows it
/// (`AWS_ALLOW_HTTP=true`, `AZURE_ALLOW_HTTP=true`, read by the builder
/// too), or when the endpoint is on this machine's loopback (a local
/// S3-compatible server or emulator), where nothing crosses a network.
fn plain_http_allowed(vendor: &str) -> bool {
    let set = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if set(&format!("{vendor}_ALLOW_HTTP")).is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return true;
    }
    ["ENDPOINT_URL", "ENDPOINT", "ENDPOINT_URL_S3"]
        .iter()
        .filter_map(|k| set(&format!("{vendor}_{k}")))
        .any(|endpoint| {
            url::Url::parse(&endpoint).is_ok_and(|u| {
                u.scheme() == "http"
                    && match u.host() {
                        Some(url::Host::Domain(d)) => d == "localhost",
                        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                        None => false,
                    }
            })
        })
}

fn credentials_hint(scheme: &str) -> &'static str {
    match scheme {
        "gs" => "GOOGLE_APPLICATION_CREDENTIALS or GOOGLE_SERVICE_ACCOUNT",
        "s3" | "s3a" => "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_PROFILE",
        _ => "AZURE_STORAGE_ACCOUNT_NAME, AZURE_STORAGE_ACCOUNT_KEY or AZURE_STORAGE_SAS_KEY",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_folders_are_told_apart() {
        assert!(is_url("s3://bucket/prefix"));
        assert!(is_url("gs://b"));
        assert!(!is_url("sample_data"));
        assert!(!is_url("/data/s3:/x"));
        assert!(!is_url("./a://b"));
    }

    #[test]
    fn a_root_is_named_without_a_trailing_slash() {
        let root = StoreRoot::open("s3://acme-extracts/prod/2026/").unwrap();
        assert_eq!(root.url(), "s3://acme-extracts/prod/2026");
        let root = StoreRoot::open("s3://acme-extracts").unwrap();
        assert_eq!(root.url(), "s3://acme-extracts");
        assert_eq!(
            root.name(&ObjectPath::from("crm/deals/part-0.parquet")),
            "s3://acme-extracts/crm/deals/part-0.parquet"
        );
    }

    #[test]
    fn other_schemes_are_refused_by_name() {
        let e = StoreRoot::open("ftp://host/x").unwrap_err().to_string();
        assert!(e.contains("`ftp://` is not a store"), "{e}");
        assert!(e.contains("s3://BUCKET/PREFIX"), "{e}");
    }
}
