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
use futures::{StreamExt, TryStreamExt};
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
    /// What the engine reads through: only the objects canon listed and
    /// checked, each at the ETag (and version) it checked.
    pinned: Arc<PinnedReads>,
}

impl std::fmt::Debug for StoreRoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url)
    }
}

/// The timeouts every request to a store runs with: an endpoint that does
/// not accept connections fails within seconds; a request that connects is
/// given 5 minutes to finish by default, since the limit covers the whole
/// body and a ranged read of a large column chunk over a slow link takes a
/// while (`CANON_STORE_TIMEOUT`, e.g. `90s` or `10m`, sets it).
/// [`StoreRoot::probe`] has its own deadline, so a store that does not
/// answer at all is still reported within seconds.
const CONNECT_TIMEOUT: &str = "3s";
const REQUEST_TIMEOUT: &str = "5m";

fn request_timeout() -> String {
    std::env::var("CANON_STORE_TIMEOUT")
        .ok()
        .filter(|t| !t.trim().is_empty())
        .unwrap_or_else(|| REQUEST_TIMEOUT.to_string())
}

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
        // The store's own configuration: its settings, not the URL's form.
        let unconfigured = |why: String| {
            CanonError::request(format!(
                "data root `{text}`: cannot configure its store: {why} (see the environment \
                 variables in README, \"Data in object stores\")"
            ))
        };
        let parsed = url::Url::parse(text).map_err(|e| bad(format!("not a URL: {e}")))?;
        if !parsed.username().is_empty()
            || parsed.password().is_some()
            || parsed.port().is_some()
            || parsed.query().is_some()
            || parsed.fragment().is_some()
        {
            // Said without the text: it may hold a password.
            return Err(CanonError::request(format!(
                "data root {}://{}/…: a store's URL is scheme://BUCKET/PREFIX only, without a \
                 user, password, port, `?query` or `#fragment`; credentials and the endpoint \
                 come from the environment (AWS_*, GOOGLE_*, AZURE_*)",
                parsed.scheme(),
                parsed.host_str().unwrap_or("")
            )));
        }
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
                let builder = AmazonS3Builder::from_env().with_url(text);
                let endpoint = builder.get_config_value(&Key::Endpoint);
                builder
                    .with_allow_http(plain_http_allowed("AWS", endpoint.as_deref()))
                    .with_config(
                        Key::Client(ClientConfigKey::ConnectTimeout),
                        CONNECT_TIMEOUT,
                    )
                    .with_config(Key::Client(ClientConfigKey::Timeout), request_timeout())
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
                    .with_config(Key::Client(ClientConfigKey::Timeout), request_timeout())
                    .with_retry(retries())
                    .build()
                    .map(|s| Arc::new(s) as Arc<dyn ObjectStore>)
            }
            object_store::ObjectStoreScheme::MicrosoftAzure => {
                use object_store::azure::{AzureConfigKey as Key, MicrosoftAzureBuilder};
                let builder = MicrosoftAzureBuilder::from_env().with_url(text);
                let endpoint = builder.get_config_value(&Key::Endpoint);
                builder
                    .with_allow_http(plain_http_allowed("AZURE", endpoint.as_deref()))
                    .with_config(
                        Key::Client(ClientConfigKey::ConnectTimeout),
                        CONNECT_TIMEOUT,
                    )
                    .with_config(Key::Client(ClientConfigKey::Timeout), request_timeout())
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
        .map_err(|e| unconfigured(e.to_string()))?;
        let url = match prefix.as_ref() {
            "" => base.as_str().trim_end_matches('/').to_string(),
            p => format!("{}/{p}", base.as_str().trim_end_matches('/')),
        };
        let pinned = Arc::new(PinnedReads {
            inner: store.clone(),
            pins: std::sync::RwLock::new(std::collections::HashMap::new()),
        });
        Ok(StoreRoot {
            url,
            base,
            prefix,
            store,
            pinned,
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
        ctx.register_object_store(&self.base, self.pinned.clone());
    }

    /// The URL the engine reads the object at `location` by, and the pin
    /// that holds it to what canon checked. Each segment of the key is
    /// percent-encoded, so a key with `#`, `?` or `%` names that object and
    /// no other (the engine decodes the URL back to the key); a key that
    /// would not come back the same is refused, never read as another.
    pub fn engine_url(
        &self,
        meta: &ObjectMeta,
    ) -> std::result::Result<datafusion::datasource::listing::ListingTableUrl, String> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| format!("{} cannot hold a path", self.base))?
            .clear()
            .extend(meta.location.as_ref().split('/'));
        let listed = datafusion::datasource::listing::ListingTableUrl::try_new(url, None)
            .map_err(|e| e.to_string())?;
        if listed.prefix() != &meta.location {
            return Err(format!(
                "its name does not survive the engine's URL (read back as `{}`)",
                listed.prefix()
            ));
        }
        self.pinned.pin(meta);
        Ok(listed)
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
            _ if text.contains("invalid path") => "an object under it has a name canon's store \
                 client cannot represent (an empty segment `//`, a `.` or `..` segment, or a \
                 trailing `/`): rename or remove that object"
                .to_string(),
            _ if text.contains("changed after canon checked it") => {
                "an object changed while canon read it: run again once the extracts are \
                 written"
                    .to_string()
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
        // As on disk: `./crm/x`, `crm//x` and `crm/x/` name the folder `crm/x`.
        let segments: Vec<&str> = spec
            .path
            .split('/')
            .filter(|s| !s.is_empty() && *s != ".")
            .collect();
        let refuse = |why: &str| {
            CanonError::request(format!(
                "{}: source {}/{}: path `{}` does not name a prefix inside the data root {}: {why}",
                model.at(&yaml_path!["sources", id.index, "path"]),
                model.spec.system,
                spec.name,
                spec.path,
                self.url
            ))
        };
        if spec.path.starts_with('/') || segments.contains(&"..") {
            return Err(refuse(
                "a source's path in an object store is relative, without `..`",
            ));
        }
        if segments.is_empty() {
            return Err(refuse("it names no folder"));
        }
        // The key as written (a `*` or `%` in a folder name is that character).
        let key = match self.prefix.as_ref() {
            "" => segments.join("/"),
            root => format!("{root}/{}", segments.join("/")),
        };
        ObjectPath::parse(&key).map_err(|e| refuse(&e.to_string()))
    }

    /// The objects of source `id`, sorted by name: every `.parquet` object
    /// under its prefix whose name, and every folder of which under the
    /// prefix, starts with neither `.` nor `_`. This list is the table.
    pub async fn table_objects(&self, catalog: &Catalog, id: SourceId) -> Result<Vec<ObjectMeta>> {
        let location = catalog.source_location(id);
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

    /// A run's failure as the data root's, when the store failed under the
    /// engine (a refused or failed read, an object changed since canon
    /// checked it) or an object did not decode: located at the table (and
    /// object) it names among `read` (each table's location and object
    /// URLs), with what to do, instead of being blamed on the definition
    /// being computed. Any other error is returned as it is.
    pub fn located(&self, error: CanonError, read: &[(DataLocation, Vec<String>)]) -> CanonError {
        let engine = {
            let mut e = &error;
            while let CanonError::Context { source, .. } = e {
                e = source;
            }
            match e {
                CanonError::Engine(engine) => engine,
                _ => return error,
            }
        };
        let mut link: Option<&(dyn std::error::Error + 'static)> = Some(engine);
        let mut damaged = false;
        while let Some(e) = link {
            if let Some(store) = e.downcast_ref::<object_store::Error>() {
                let path = match store {
                    object_store::Error::NotFound { path, .. }
                    | object_store::Error::Precondition { path, .. }
                    | object_store::Error::PermissionDenied { path, .. }
                    | object_store::Error::Unauthenticated { path, .. } => Some(path.as_str()),
                    _ => None,
                };
                let url = path.map(|p| self.name(&ObjectPath::from(p)));
                let location = url
                    .as_ref()
                    .and_then(|url| {
                        read.iter()
                            .find(|(_, files)| files.contains(url))
                            .map(|(l, _)| DataLocation {
                                file: Some(url.clone()),
                                ..l.clone()
                            })
                    })
                    .unwrap_or_else(|| DataLocation::root(std::path::Path::new(&self.url)));
                let what = url.unwrap_or_else(|| self.url.clone());
                return CanonError::data(location, self.explain(store, &what));
            }
            if e.downcast_ref::<datafusion::parquet::errors::ParquetError>()
                .is_some()
            {
                damaged = true;
            }
            link = e.source();
        }
        if damaged {
            return CanonError::data(
                DataLocation::root(std::path::Path::new(&self.url)),
                format!(
                    "an object the engine read does not decode (damaged Parquet?): {engine}\n  \
                     (`canon validate --data {}` checks every footer; copy the extracts to a \
                     folder and run `canon validate --deep` there to find the damaged page)",
                    self.url
                ),
            );
        }
        error
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

    /// Whether every object of `files` still has the ETag and version canon
    /// listed, by one HEAD each (16 at a time): for reads canon could not
    /// pin, a cluster's executors', which read through stores of their own
    /// (and `If-Match` does not travel in a physical plan). Called once the
    /// reads are over, so an object rewritten while they ran is caught.
    /// `Err` names an object found changed or gone when there is one, and
    /// only otherwise a HEAD that could not be answered: the two mean
    /// different things to a job that failed ([`Unverified`]).
    pub async fn still_as_listed(&self, files: &[FileFact]) -> std::result::Result<(), Unverified> {
        let base = format!("{}/", self.base.as_str().trim_end_matches('/'));
        let mut heads = futures::stream::iter(files.iter().cloned().map(|file| {
            let location = file.path.strip_prefix(&base).map(ObjectPath::from);
            async move {
                let Some(location) = location else {
                    return Err(Unverified::Unanswered(format!(
                        "{} is not in {}",
                        file.path, self.url
                    )));
                };
                let now = self.store.head(&location).await;
                let changed = |now: &str| {
                    format!(
                        "{} changed while the cluster read it (canon listed {}, the store now has {now}): run again once the extracts are written",
                        file.path,
                        file.identity()
                    )
                };
                match now {
                    // A listing carries no versions on some stores (S3)
                    // where a HEAD does: a version is compared only when
                    // canon listed one.
                    Ok(meta)
                        if meta.e_tag == file.etag
                            && (file.version.is_none() || meta.version == file.version) =>
                    {
                        Ok(())
                    }
                    Ok(meta) => Err(Unverified::Changed(changed(&FileFact::object_identity(
                        meta.e_tag.as_deref(),
                        meta.version.as_deref(),
                        meta.size,
                    )))),
                    Err(object_store::Error::NotFound { .. }) => {
                        Err(Unverified::Changed(changed("no such object")))
                    }
                    Err(e) => Err(Unverified::Unanswered(self.explain(&e, &file.path))),
                }
            }
        }))
        .buffer_unordered(16);
        let mut failed = Vec::new();
        while let Some(checked) = heads.next().await {
            failed.extend(checked.err());
        }
        reported(failed, |u| matches!(u, Unverified::Changed(_))).map_or(Ok(()), Err)
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
/// too), or when the endpoint the store will use is on this machine's
/// loopback (a local S3-compatible server or emulator), where nothing
/// crosses a network.
fn plain_http_allowed(vendor: &str, endpoint: Option<&str>) -> bool {
    let allowed =
        std::env::var(format!("{vendor}_ALLOW_HTTP")).is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    allowed
        || endpoint.is_some_and(|endpoint| {
            url::Url::parse(endpoint).is_ok_and(|u| {
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

/// An object's pin: the ETag and version canon checked.
type Pin = (Option<String>, Option<String>);

/// The store the engine reads a data root through: read-only, and only the
/// objects canon listed and checked, each at the ETag and version it
/// checked (`If-Match` on every read). An object rewritten between canon's
/// check and the engine's read fails the run (the store answers 412)
/// instead of computing over bytes the evidence does not describe; a
/// listing, or a read of any other object, is refused, so the engine can
/// never fall back to reading what canon did not list.
#[derive(Debug)]
struct PinnedReads {
    inner: Arc<dyn ObjectStore>,
    pins: std::sync::RwLock<std::collections::HashMap<ObjectPath, Pin>>,
}

impl PinnedReads {
    fn pin(&self, meta: &ObjectMeta) {
        self.pins.write().expect("lock").insert(
            meta.location.clone(),
            (meta.e_tag.clone(), meta.version.clone()),
        );
    }

    fn refused(what: &str) -> object_store::Error {
        object_store::Error::NotSupported {
            source: format!("canon's engine {what}: it reads only the objects canon listed").into(),
        }
    }
}

impl std::fmt::Display for PinnedReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pinned reads of {}", self.inner)
    }
}

#[async_trait::async_trait]
impl ObjectStore for PinnedReads {
    async fn put_opts(
        &self,
        _: &ObjectPath,
        _: object_store::PutPayload,
        _: object_store::PutOptions,
    ) -> object_store::Result<object_store::PutResult> {
        Err(Self::refused("does not write to a data root"))
    }

    async fn put_multipart_opts(
        &self,
        _: &ObjectPath,
        _: object_store::PutMultipartOptions,
    ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
        Err(Self::refused("does not write to a data root"))
    }

    async fn get_opts(
        &self,
        location: &ObjectPath,
        mut options: object_store::GetOptions,
    ) -> object_store::Result<object_store::GetResult> {
        let pin = self.pins.read().expect("lock").get(location).cloned();
        let Some((etag, version)) = pin else {
            return Err(object_store::Error::Generic {
                store: "canon",
                source: format!("{location} is not one of the objects canon listed and checked")
                    .into(),
            });
        };
        if options.if_match.is_none() {
            options.if_match = etag.clone();
        }
        if options.version.is_none() {
            options.version = version;
        }
        self.inner
            .get_opts(location, options)
            .await
            .map_err(|e| match e {
                object_store::Error::Precondition { path, .. } => {
                    object_store::Error::Precondition {
                        source: format!(
                            "the object changed after canon checked it (ETag {}): run again \
                             once the extracts are written",
                            etag.as_deref().unwrap_or("-")
                        )
                        .into(),
                        path,
                    }
                }
                other => other,
            })
    }

    fn delete_stream(
        &self,
        _: futures::stream::BoxStream<'static, object_store::Result<ObjectPath>>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<ObjectPath>> {
        futures::stream::once(async { Err(Self::refused("does not delete from a data root")) })
            .boxed()
    }

    fn list(
        &self,
        _: Option<&ObjectPath>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<ObjectMeta>> {
        futures::stream::once(async { Err(Self::refused("does not list")) }).boxed()
    }

    async fn list_with_delimiter(
        &self,
        _: Option<&ObjectPath>,
    ) -> object_store::Result<object_store::ListResult> {
        Err(Self::refused("does not list"))
    }

    async fn copy_opts(
        &self,
        _: &ObjectPath,
        _: &ObjectPath,
        _: object_store::CopyOptions,
    ) -> object_store::Result<()> {
        Err(Self::refused("does not write to a data root"))
    }
}

fn credentials_hint(scheme: &str) -> &'static str {
    match scheme {
        "gs" => "GOOGLE_APPLICATION_CREDENTIALS or GOOGLE_SERVICE_ACCOUNT",
        "s3" | "s3a" => {
            "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN (AWS_PROFILE is not read)"
        }
        _ => "AZURE_STORAGE_ACCOUNT_NAME, AZURE_STORAGE_ACCOUNT_KEY or AZURE_STORAGE_SAS_KEY",
    }
}

/// Of checks that failed, in the order found, the one to report: the first
/// that found an object `changed`, else the first (a store that did not
/// answer one object says nothing of the others, and a change decides what
/// a job read).
pub fn reported<T>(failed: impl IntoIterator<Item = T>, changed: impl Fn(&T) -> bool) -> Option<T> {
    let mut first = None;
    for failure in failed {
        if changed(&failure) {
            return Some(failure);
        }
        first = first.or(Some(failure));
    }
    first
}

/// Why objects read where canon's pins do not reach could not be vouched
/// for ([`StoreRoot::still_as_listed`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unverified {
    /// An object is no longer the one canon listed (rewritten or deleted):
    /// whatever was read from it, answer or failure, came from other bytes.
    Changed(String),
    /// The store did not answer a HEAD (unreachable, access refused): the
    /// objects may be unchanged, so this says nothing about why a job
    /// failed, though it leaves a finished job's answer unvouched for.
    Unanswered(String),
}

impl Unverified {
    pub fn message(&self) -> &str {
        match self {
            Unverified::Changed(m) | Unverified::Unanswered(m) => m,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;

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

    fn meta(key: &str) -> ObjectMeta {
        ObjectMeta {
            location: ObjectPath::parse(key).unwrap(),
            last_modified: chrono::Utc::now(),
            size: 10,
            e_tag: Some("\"e1\"".into()),
            version: None,
        }
    }

    // The engine decodes the URL it is given back to a key: `#`, `?`, `%`
    // and spaces in a key must come back as themselves, so the object read
    // is the object listed (a raw `#` would cut the key short, a raw `%41`
    // would be read as `A`).
    #[test]
    fn every_key_comes_back_from_the_engines_url_as_itself() {
        let root = StoreRoot::open("s3://b/ex").unwrap();
        for key in [
            "ex/crm/opportunity/part-00000.parquet",
            "ex/crm/opportunity/a#1 %20b?.parquet",
            "ex/crm/opportunity/%41.parquet",
            "ex/crm/opp*/[x]+ü.parquet",
        ] {
            let url = root.engine_url(&meta(key)).unwrap();
            assert_eq!(url.prefix().as_ref(), key);
        }
    }

    // What the engine reads through: the object canon checked, or an error.
    #[tokio::test]
    async fn the_engine_reads_only_pinned_objects_at_the_etag_canon_checked() {
        let inner: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let key = ObjectPath::from("ex/crm/account/part-0.parquet");
        inner.put(&key, "first".into()).await.unwrap();
        let checked = inner.head(&key).await.unwrap();
        let pinned = PinnedReads {
            inner: inner.clone(),
            pins: Default::default(),
        };
        pinned.pin(&checked);
        let read = pinned.get(&key).await.unwrap().bytes().await.unwrap();
        assert_eq!(&read[..], b"first");

        // Rewritten after canon checked it: refused, not read.
        inner.put(&key, "second".into()).await.unwrap();
        let e = pinned.get_range(&key, 0..3).await.unwrap_err();
        assert!(matches!(e, object_store::Error::Precondition { .. }), "{e}");
        assert!(
            e.to_string().contains("changed after canon checked it"),
            "{e}"
        );

        // Never listed, never written, nothing canon did not list read.
        let other = ObjectPath::from("ex/crm/account/_staging.parquet");
        inner.put(&other, "x".into()).await.unwrap();
        assert!(pinned.get(&other).await.is_err());
        assert!(pinned.list(None).next().await.unwrap().is_err());
        assert!(pinned.list_with_delimiter(None).await.is_err());
        assert!(pinned.put(&key, "third".into()).await.is_err());
        assert!(pinned.delete(&key).await.is_err());
        assert_eq!(
            &inner.get(&key).await.unwrap().bytes().await.unwrap()[..],
            b"second"
        );
    }

    // What a cluster's executors read canon cannot pin: once a job is over,
    // each object it read must still be the one canon listed.
    #[tokio::test]
    async fn an_object_rewritten_or_deleted_after_listing_is_caught() {
        let mut root = StoreRoot::open("s3://b/ex").unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        root.store = store.clone();
        let keys = [
            "ex/crm/account/part-0.parquet",
            "ex/crm/account/part-1.parquet",
        ];
        let mut listed = Vec::new();
        for key in keys {
            let key = ObjectPath::from(key);
            store.put(&key, "first".into()).await.unwrap();
            let meta = store.head(&key).await.unwrap();
            listed.push(FileFact {
                path: root.name(&key),
                bytes: meta.size,
                rows: 1,
                sha256: String::new(),
                etag: meta.e_tag,
                version: meta.version,
            });
        }
        root.still_as_listed(&listed).await.unwrap();

        // Rewritten (InMemory's ETags count writes: "0", "1", then "2").
        let second = ObjectPath::from(keys[1]);
        store.put(&second, "second".into()).await.unwrap();
        let e = root.still_as_listed(&listed).await.unwrap_err();
        assert_eq!(
            e,
            Unverified::Changed(
                "s3://b/ex/crm/account/part-1.parquet changed while the cluster read it (canon \
                 listed etag:1 version:- bytes:5, the store now has etag:2 version:- bytes:6): \
                 run again once the extracts are written"
                    .into()
            )
        );

        // A HEAD that gets no answer says nothing of the others: a changed
        // object is reported before it, wherever it comes in the list.
        let mut outside = listed[0].clone();
        outside.path = "s3://elsewhere/crm/account/part-9.parquet".into();
        let mut with_unanswered = vec![outside.clone()];
        with_unanswered.extend(listed.iter().cloned());
        with_unanswered.push(outside.clone());
        let e = root.still_as_listed(&with_unanswered).await.unwrap_err();
        assert!(
            matches!(&e, Unverified::Changed(m) if m.contains("part-1.parquet")),
            "{e:?}"
        );
        let e = root
            .still_as_listed(&[listed[0].clone(), outside])
            .await
            .unwrap_err();
        assert_eq!(
            e,
            Unverified::Unanswered(
                "s3://elsewhere/crm/account/part-9.parquet is not in s3://b/ex".into()
            )
        );

        // Deleted.
        store.put(&second, "first".into()).await.unwrap();
        listed[1].etag = store.head(&second).await.unwrap().e_tag;
        root.still_as_listed(&listed).await.unwrap();
        store.delete(&ObjectPath::from(keys[0])).await.unwrap();
        let e = root.still_as_listed(&listed).await.unwrap_err();
        assert!(matches!(e, Unverified::Changed(_)), "{e:?}");
        let e = e.message();
        assert!(
            e.contains("part-0.parquet changed while the cluster read it"),
            "{e}"
        );
        assert!(e.contains("the store now has no such object"), "{e}");
    }

    // A store's failure under the engine is the data's, located at the
    // table and object, not blamed on the definition being computed.
    #[test]
    fn a_failed_read_is_located_at_its_object() {
        let root = StoreRoot::open("s3://b/ex").unwrap();
        let failure = datafusion::error::DataFusionError::ObjectStore(Box::new(
            object_store::Error::Precondition {
                path: "ex/crm/account/part-0.parquet".into(),
                source: "the object changed after canon checked it (ETag \"e1\")".into(),
            },
        ));
        let error = CanonError::Context {
            context: "metric `bookings`".into(),
            source: Box::new(CanonError::Engine(failure)),
            hint: String::new(),
        };
        let read = vec![(
            DataLocation {
                system: "crm".into(),
                table: "account".into(),
                file: None,
                column: None,
            },
            vec!["s3://b/ex/crm/account/part-0.parquet".to_string()],
        )];
        let located = root.located(error, &read).to_string();
        assert!(
            located.starts_with(
                "data error in crm/account file s3://b/ex/crm/account/part-0.parquet: "
            ),
            "{located}"
        );
        assert!(
            located.contains("an object changed while canon read it"),
            "{located}"
        );
    }

    #[test]
    fn a_url_with_credentials_or_a_port_is_refused_without_echoing_it() {
        let e = StoreRoot::open("s3://user:secret@b/ex")
            .unwrap_err()
            .to_string();
        assert!(e.contains("without a user, password, port"), "{e}");
        assert!(!e.contains("secret"), "{e}");
        assert!(StoreRoot::open("s3://b:9000/ex").is_err());
        assert!(StoreRoot::open("s3://b/ex?versionId=1").is_err());
    }

    #[test]
    fn a_change_is_reported_before_an_unanswered_check_wherever_it_comes() {
        let changed = |u: &Unverified| matches!(u, Unverified::Changed(_));
        let unanswered = |m: &str| Unverified::Unanswered(m.into());
        let change = |m: &str| Unverified::Changed(m.into());
        assert_eq!(reported(Vec::<Unverified>::new(), changed), None);
        assert_eq!(
            reported([unanswered("a"), unanswered("b")], changed),
            Some(unanswered("a"))
        );
        assert_eq!(
            reported([unanswered("a"), change("b"), change("c")], changed),
            Some(change("b"))
        );
        assert_eq!(
            reported([change("b"), unanswered("a")], changed),
            Some(change("b"))
        );
    }

    #[test]
    fn other_schemes_are_refused_by_name() {
        let e = StoreRoot::open("ftp://host/x").unwrap_err().to_string();
        assert!(e.contains("`ftp://` is not a store"), "{e}");
        assert!(e.contains("s3://BUCKET/PREFIX"), "{e}");
    }
}
