//! Data roots in an object store, through the real binary, against a real
//! S3-compatible server on loopback (moto, started by each test: see
//! `tests/object_store/s3_server.py`) and Azure's emulator (Azurite, from
//! npm). What they need is installed under target/ when this machine lacks
//! it: moto and azure-storage-blob into `target/s3-venv`, Azurite into
//! `target/azurite`.
//!
//! The sample company uploaded to a bucket must publish exactly what it
//! publishes from disk (every certified metric for every configured period,
//! and the bookings-to-revenue bridge); the store's faults must be clear
//! errors within 30 s; a model's path may not climb out of the prefix; and
//! nothing is written to a bucket.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::common::*;

const BUCKET: &str = "acme";
const ROOT: &str = "s3://acme/extracts";

/// A Python with moto's server: this machine's when it has it, else a
/// virtual environment made once under target/ (pinned moto, from PyPI).
fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let has_moto = |python: &Path| {
            Command::new(python)
                .args(["-c", "import moto.server, boto3, azure.storage.blob"])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        let system = PathBuf::from("python3");
        if has_moto(&system) {
            return system;
        }
        let venv = repo().join("target").join("s3-venv");
        let python = venv.join("bin").join("python");
        if !has_moto(&python) {
            let made = Command::new("python3")
                .args(["-m", "venv"])
                .arg(&venv)
                .status()
                .expect("python3 runs");
            assert!(made.success(), "python3 -m venv {}", venv.display());
            let installed = Command::new(&python)
                .args(["-m", "pip", "install", "-q", "moto[server]==5.2.1"])
                .arg("azure-storage-blob==12.31.1")
                .status()
                .expect("pip runs");
            assert!(installed.success(), "pip install into {}", venv.display());
        }
        python
    })
}

/// A moto server on a free loopback port, stopped when dropped.
struct S3 {
    child: Child,
    endpoint: String,
}

impl S3 {
    /// `open`: any credentials, the sample company under `acme/extracts/`.
    fn with_sample() -> S3 {
        let data = repo().join("sample_data");
        S3::start(&["open", data.to_str().unwrap(), BUCKET, "extracts"])
    }

    /// `locked`: every access key refused.
    fn locked() -> S3 {
        S3::start(&["locked"])
    }

    fn start(args: &[&str]) -> S3 {
        let mut child = Command::new(python())
            .arg(repo().join("tests/object_store/s3_server.py"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the S3 server starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let ready: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("the S3 server said {line:?}, not its endpoint: {e}"));
        S3 {
            child,
            endpoint: ready["endpoint"].as_str().unwrap().to_string(),
        }
    }

    /// `canon ARGS` in `project` with this server's endpoint and `key`.
    fn canon(&self, project: &Path, key: &str, args: &[&str]) -> Output {
        canon_s3(project, &self.endpoint, key, args)
    }

    /// [`command_s3`] with this server's endpoint and the key `canon`.
    fn command(&self, project: &Path, args: &[&str]) -> Command {
        command_s3(project, &self.endpoint, "canon", args)
    }

    /// The bucket, as the test's own client (to change objects under a run).
    fn store(&self) -> object_store::aws::AmazonS3 {
        object_store::aws::AmazonS3Builder::new()
            .with_bucket_name(BUCKET)
            .with_endpoint(&self.endpoint)
            .with_allow_http(true)
            .with_region("us-east-1")
            .with_access_key_id("canon")
            .with_secret_access_key("canon")
            .build()
            .unwrap()
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `canon ARGS` over `project` against the endpoint `endpoint`, with the
/// access key `key`, nothing else of this machine's AWS settings: to add to
/// (a cache folder, pipes) before it runs.
fn command_s3(project: &Path, endpoint: &str, key: &str, args: &[&str]) -> Command {
    let mut c = command(project, args);
    for var in [
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_ALLOW_HTTP",
        "AWS_ENDPOINT",
    ] {
        c.env_remove(var);
    }
    c.env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", key)
        .env("AWS_SECRET_ACCESS_KEY", key)
        .env("AWS_REGION", "us-east-1");
    c
}

/// [`command_s3`], run.
fn canon_s3(project: &Path, endpoint: &str, key: &str, args: &[&str]) -> Output {
    command_s3(project, endpoint, key, args)
        .output()
        .expect("the canon binary runs")
}

fn put(store: &object_store::aws::AmazonS3, key: &str, bytes: Vec<u8>) {
    use object_store::ObjectStoreExt;
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(store.put(&object_store::path::Path::parse(key).unwrap(), bytes.into()))
        .unwrap();
}

fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_project(dir.path());
    dir
}

/// A manifest without what names where the data was read (paths, content
/// hashes or ETags, and the fingerprints over them) and when it was written
/// (with the seal of the history, whose rows say when).
fn without_places(mut manifest: serde_json::Value) -> serde_json::Value {
    manifest["generated_at"] = serde_json::Value::Null;
    manifest["history_sha256"] = serde_json::Value::Null;
    // Its lineage names where the files were read.
    manifest["lineage_sha256"] = serde_json::Value::Null;
    for kind in ["metrics", "reconciliations"] {
        for entry in manifest[kind].as_array_mut().unwrap() {
            entry["fingerprint"] = serde_json::Value::Null;
        }
    }
    manifest
}

/// The lines of a publication's lineage.jsonl, each result's lineage.
fn read_lineage(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("lineage.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The lineage lines but for where each file was read from (path, ETag or
/// sha256 differ between a disk and a store; the tables, columns, plans
/// and definitions do not).
fn lineage_without_places(dir: &Path) -> Vec<serde_json::Value> {
    let mut lines = read_lineage(dir);
    for line in &mut lines {
        for source in line
            .pointer_mut("/lineage/sources")
            .and_then(|s| s.as_array_mut())
            .unwrap()
        {
            source["files"] = serde_json::Value::Null;
        }
    }
    lines
}

/// The sample company published from disk, once for the tests that compare
/// a store's publication with it.
fn disk_publication() -> &'static Path {
    static PUBLISHED: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &PUBLISHED
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            copy_project(dir.path());
            let out = dir.path().join("published");
            let from_disk = canon(
                dir.path(),
                &[
                    "publish",
                    "--out",
                    out.to_str().unwrap(),
                    "--data",
                    repo().join("sample_data").to_str().unwrap(),
                ],
            );
            assert!(from_disk.status.success(), "{}", stderr(&from_disk));
            (dir, out)
        })
        .1
}

fn read_manifest(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap()
}

/// Asserts the publication in `remote` (computed from a store) is the one in
/// `local` (from disk): every file byte for byte but the manifest, the
/// history and the lineage (20 certified metrics as CSV and Parquet, the
/// exclusions, the bridge and its detail for 4 periods, the marker), the
/// bookings of FY2026-Q1 as the sample gives them, the manifest equal but
/// for when it was written, and the lineage but for where each file was read.
fn assert_same_publication(local: &Path, remote: &Path) {
    let (disk, store) = (contents(local), contents(remote));
    let names = |c: &[(String, Vec<u8>)], root: &Path| -> Vec<String> {
        c.iter()
            .map(|(p, _)| p.strip_prefix(root.to_str().unwrap()).unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&disk, local), names(&store, remote));
    let mut compared = 0;
    for ((name, a), (_, b)) in disk.iter().zip(&store) {
        if ["manifest.json", "history.jsonl", "lineage.jsonl"]
            .iter()
            .any(|f| name.ends_with(f))
        {
            continue;
        }
        assert!(a == b, "{name} differs between the disk and the store");
        compared += 1;
    }
    assert_eq!(compared, 20 * 2 + 1 + 4 * 2 + 1);
    let bookings = std::fs::read_to_string(remote.join("metrics/bookings.csv")).unwrap();
    assert!(
        bookings
            .contains("bookings,FY2026-Q1,fiscal_quarter,2025-02-01,2025-05-01,8783667.280000,USD"),
        "{bookings}"
    );
    let (disk_manifest, store_manifest) = (read_manifest(local), read_manifest(remote));
    assert_eq!(
        without_places(disk_manifest),
        without_places(store_manifest)
    );
    // 80 metric results (76 published, 4 pending without lineage: 76
    // lines) and the bridge's 4 periods × 2 governed sides = 84 lines.
    let lineage = lineage_without_places(remote);
    assert_eq!(lineage.len(), 76 + 4 * 2);
    assert_eq!(lineage, lineage_without_places(local));
}

// The sample company, uploaded to a bucket, publishes byte for byte the
// numbers it publishes from disk: every certified metric for the four
// configured periods (metrics/*.csv and *.parquet), the exclusions, and the
// bookings-to-revenue bridge with its detail, and the same manifest but for
// where the data was read. The lineage names each object by URL with its
// ETag, and no sha256 (nothing was downloaded to hash it).
#[test]
fn the_sample_company_in_a_bucket_publishes_what_it_publishes_from_disk() {
    let s3 = S3::with_sample();
    let project = project();
    let (local, remote) = (disk_publication(), project.path().join("remote"));
    let from_bucket = s3.canon(
        project.path(),
        "canon",
        &[
            "publish",
            "--out",
            remote.to_str().unwrap(),
            "--data",
            ROOT,
            "--no-cache",
        ],
    );
    assert!(from_bucket.status.success(), "{}", stderr(&from_bucket));
    assert!(
        stdout(&from_bucket).starts_with(
            // 80 = 76 published + 4 pending (mql_to_sql_rate and
            // mqls_converted_90d in FY2026-Q3 and Q4: their 90-day windows
            // close after the sample's extract).
            "published 76 metric result(s) (4 more pending: no final value until a conversion window closes, see manifest.json) and 4 reconciliation(s) for 4 period(s)"
        ),
        "{}",
        stdout(&from_bucket)
    );

    assert_same_publication(local, &remote);
    let (bucket_lineage, disk_lineage) = (read_lineage(&remote), read_lineage(local));
    let file = &bucket_lineage[0]["lineage"]["sources"][0]["files"][0];
    let path = file["path"].as_str().unwrap();
    assert!(path.starts_with("s3://acme/extracts/"), "{file}");
    assert!(path.ends_with("/part-00000.parquet"), "{file}");
    assert!(
        file["etag"].as_str().is_some_and(|e| !e.is_empty()),
        "{file}"
    );
    assert!(file.get("sha256").is_none(), "{file}");
    let disk_file = &disk_lineage[0]["lineage"]["sources"][0]["files"][0];
    assert_eq!(disk_file["bytes"], file["bytes"]);
    assert_eq!(disk_file["rows"], file["rows"]);
}

// A repeated query is served from the result cache, checked by listing the
// tables' prefixes again (ETag, version and size); objects outside the
// table (`_SUCCESS`, a `.staging/` folder) change nothing; a new part file
// under a table's prefix is a miss, and its rows are counted.
#[test]
fn the_cache_serves_a_bucket_until_an_object_of_a_table_changes() {
    let s3 = S3::with_sample();
    let project = project();
    let run = || -> Output {
        let mut c = s3.command(
            project.path(),
            &[
                "query",
                "closed_deals",
                "--period",
                "FY2026-Q1",
                "--format",
                "json",
                "--data",
                ROOT,
            ],
        );
        c.env("CANON_CACHE_DIR", project.path().join("cache"));
        c.output().unwrap()
    };
    let query = || -> serde_json::Value {
        let out = run();
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let first = query();
    assert_eq!(first["cache"]["status"], "miss");
    let second = query();
    assert_eq!(second["cache"]["status"], "hit");
    assert_eq!(first["value"], second["value"]);

    let store = s3.store();
    let part =
        std::fs::read(repo().join("sample_data/crm/opportunity/part-00000.parquet")).unwrap();
    put(&store, "extracts/crm/opportunity/_SUCCESS", Vec::new());
    put(
        &store,
        "extracts/crm/opportunity/.staging/part-00009.parquet",
        part.clone(),
    );
    let third = query();
    assert_eq!(
        third["cache"]["status"], "hit",
        "objects outside the table are not inputs"
    );

    // The same deals landed twice: the table's rows double, so the number
    // must be computed again (here the uniqueness gate, or the count, moves).
    put(&store, "extracts/crm/opportunity/part-00001.parquet", part);
    let out = run();
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        !text.contains("\"status\": \"hit\""),
        "a changed table must not be served from the cache: {text}"
    );
    assert!(
        text.contains("part-00001.parquet"),
        "the new part file is read (and named): {text}"
    );
}

/// Runs `canon query bookings` against `endpoint` and returns (exit code,
/// stderr, seconds taken).
fn failing_query(endpoint: &str, key: &str, root: &str) -> (i32, String, f64) {
    let project = project();
    let started = Instant::now();
    let out = canon_s3(
        project.path(),
        endpoint,
        key,
        &["query", "bookings", "--period", "FY2026-Q1", "--data", root],
    );
    (
        out.status.code().unwrap_or(-1),
        stderr(&out),
        started.elapsed().as_secs_f64(),
    )
}

// The store's faults, each a clear error naming the data root and what to
// do, exit 2, within 30 s (object_store's own retries would take minutes).
#[test]
fn a_missing_bucket_an_unknown_key_and_a_dead_endpoint_are_clear_errors_within_30_s() {
    let s3 = S3::with_sample();
    let (code, err, secs) = failing_query(&s3.endpoint, "canon", "s3://no-such-bucket/extracts");
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("data root s3://no-such-bucket/extracts: cannot read")
            && err.contains("the bucket `no-such-bucket` does not exist"),
        "{err}"
    );
    assert!(secs < 30.0, "{secs} s");

    let (code, err, _) = failing_query(&s3.endpoint, "canon", "s3://acme/no/such/prefix");
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("data root s3://acme/no/such/prefix holds no objects"),
        "{err}"
    );

    let locked = S3::locked();
    let (code, err, secs) = failing_query(&locked.endpoint, "AKIAUNKNOWN", ROOT);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("access refused: check the credentials in the environment (AWS_ACCESS_KEY_ID"),
        "{err}"
    );
    assert!(secs < 30.0, "{secs} s");

    // Nothing listens: refused at once, retried twice.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (code, err, secs) = failing_query(&format!("http://127.0.0.1:{port}"), "canon", ROOT);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("the store's endpoint does not answer"),
        "{err}"
    );
    assert!(secs < 30.0, "{secs} s");

    // A server that accepts connections and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let held = std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in silent.incoming().take(4) {
            held.push(c);
        }
        std::thread::sleep(Duration::from_secs(40));
    });
    let (code, err, secs) = failing_query(&format!("http://127.0.0.1:{port}"), "canon", ROOT);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("did not answer within 20 s"), "{err}");
    assert!(secs < 30.0, "{secs} s");
    drop(held);
}

// A model's path that climbs out of the data root's prefix (`..`) is
// refused before anything is listed, located in the model (exit 2); an
// `--out` in a bucket is refused without writing anything, here or there.
#[test]
fn a_path_out_of_the_prefix_and_an_out_in_a_bucket_are_refused() {
    let s3 = S3::with_sample();
    let project = project();
    replace_in(
        &project.path().join("models/crm.yaml"),
        "path: crm/opportunity\n",
        "path: crm/../../private/opportunity\n",
    );
    let out = s3.canon(
        project.path(),
        "canon",
        &["query", "bookings", "--period", "FY2026-Q1", "--data", ROOT],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("models/crm.yaml:"), "{err}");
    assert!(
        err.contains("path `crm/../../private/opportunity` does not name a prefix inside the data root s3://acme/extracts"),
        "{err}"
    );

    let project = self::project();
    let before = contents(project.path());
    let out = s3.canon(
        project.path(),
        "canon",
        &["publish", "--out", "s3://acme/published", "--data", ROOT],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--out s3://acme/published: canon writes to a local path only"),
        "{}",
        stderr(&out)
    );
    assert_eq!(contents(project.path()), before, "nothing written here");
    assert!(!Path::new("s3:").exists());
}

// validate reads every object's footer against its model; lineage names
// each object by URL with its size and ETag.
#[test]
fn validate_and_lineage_read_a_bucket() {
    let s3 = S3::with_sample();
    let project = project();
    let out = s3.canon(project.path(), "canon", &["validate", "--data", ROOT]);
    assert!(out.status.success(), "{}", stderr(&out));
    // 16 tables in the sample company's models, one part file each.
    assert!(
        stdout(&out).contains(
            "data ok: 16 tables, 16 objects under s3://acme/extracts match their models (footers read)"
        ),
        "{}",
        stdout(&out)
    );

    let out = s3.canon(
        project.path(),
        "canon",
        &[
            "lineage",
            "bookings",
            "--period",
            "FY2026-Q1",
            "--format",
            "json",
            "--data",
            ROOT,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let graph: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let file = graph["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["label"] == "s3://acme/extracts/crm/opportunity/part-00000.parquet")
        .unwrap_or_else(|| panic!("no node for the opportunity object: {graph}"));
    let size = std::fs::metadata(repo().join("sample_data/crm/opportunity/part-00000.parquet"))
        .unwrap()
        .len();
    let detail = file["detail"].as_str().unwrap();
    assert!(
        detail.starts_with(&format!("{size} bytes, ETag \"")),
        "{detail}"
    );
}

/// Azurite's blob service, installed once under target/azurite (pinned,
/// from npm).
fn azurite_blob() -> &'static Path {
    static AZURITE: OnceLock<PathBuf> = OnceLock::new();
    AZURITE.get_or_init(|| {
        let prefix = repo().join("target").join("azurite");
        let bin = prefix.join("node_modules/.bin/azurite-blob");
        if !bin.exists() {
            let installed = Command::new("npm")
                .args(["install", "--silent", "--no-audit", "--no-fund", "--prefix"])
                .arg(&prefix)
                .arg("azurite@3.35.0")
                .status()
                .expect("npm runs (Node.js is on the machine)");
            assert!(
                installed.success(),
                "npm install azurite into {}",
                prefix.display()
            );
        }
        bin
    })
}

/// Azurite on a free loopback port, with its own storage folder; stopped
/// when dropped.
struct Azurite {
    child: Child,
    /// `http://127.0.0.1:PORT`
    url: String,
    _storage: tempfile::TempDir,
}

impl Azurite {
    fn start() -> Azurite {
        let storage = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(azurite_blob())
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .arg("--location")
            .arg(storage.path())
            .args(["--silent", "--skipApiVersionCheck"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("Azurite starts");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "Azurite did not listen within 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Azurite {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _storage: storage,
        }
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// The sample company in an Azure container (Azurite) publishes byte for
// byte what it publishes from disk, as from S3.
#[test]
fn the_sample_company_in_an_azure_container_publishes_what_it_publishes_from_disk() {
    let azurite = Azurite::start();
    let uploaded = Command::new(python())
        .arg(repo().join("tests/object_store/azure_upload.py"))
        .arg(format!("{}/devstoreaccount1", azurite.url))
        .arg(repo().join("sample_data"))
        .args(["acme", "extracts"])
        .status()
        .unwrap();
    assert!(uploaded.success());
    let project = project();
    let (local, remote) = (disk_publication(), project.path().join("remote"));
    let mut c = command(
        project.path(),
        &[
            "publish",
            "--out",
            remote.to_str().unwrap(),
            "--data",
            "az://acme/extracts",
            "--no-cache",
        ],
    );
    let from_azure = c
        .env("AZURE_STORAGE_USE_EMULATOR", "true")
        .env("AZURITE_BLOB_STORAGE_URL", &azurite.url)
        .output()
        .unwrap();
    assert!(from_azure.status.success(), "{}", stderr(&from_azure));
    assert_same_publication(local, &remote);
    let file = &read_lineage(&remote)[0]["lineage"]["sources"][0]["files"][0];
    assert!(
        file["path"]
            .as_str()
            .unwrap()
            .starts_with("az://acme/extracts/"),
        "{file}"
    );
    assert!(
        file["etag"].as_str().is_some_and(|e| !e.is_empty()),
        "{file}"
    );
}

/// Uploads the sample company under `prefix` of the bucket, each key made
/// by `key` from its path under sample_data (None: not uploaded).
fn upload_sample(s3: &S3, prefix: &str, key: impl Fn(&str) -> Option<String>) {
    let store = s3.store();
    let root = repo().join("sample_data");
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path
                .strip_prefix(&root)
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            if let Some(k) = key(&rel) {
                put(
                    &store,
                    &format!("{prefix}/{k}"),
                    std::fs::read(&path).unwrap(),
                );
            }
        }
    }
}

// Keys with `#`, `?`, `%` and spaces are read as themselves (a URL built
// from the raw key would cut it at `#` or decode `%20`, and read another
// object or none), a folder under the table starting with `_` stays out
// even beside such a name, and a model path written `./crm//opportunity/`
// names the same prefix as on disk: bookings is the sample's 8,783,667.28
// (README), over the one opportunity object.
#[test]
fn odd_object_names_and_model_paths_read_the_objects_they_name() {
    let s3 = S3::with_sample();
    upload_sample(&s3, "odd", |rel| {
        Some(match rel {
            "crm/opportunity/part-00000.parquet" => "crm/opportunity/a#1 %20b?.parquet".into(),
            other => other.to_string(),
        })
    });
    let decoy =
        std::fs::read(repo().join("sample_data/crm/opportunity/part-00000.parquet")).unwrap();
    put(&s3.store(), "odd/crm/opportunity/a/_staging.parquet", decoy);
    let project = project();
    replace_in(
        &project.path().join("models/crm.yaml"),
        "path: crm/opportunity\n",
        "path: ./crm//opportunity/\n",
    );
    let out = s3.canon(
        project.path(),
        "canon",
        &[
            "query",
            "bookings",
            "--period",
            "FY2026-Q1",
            "--format",
            "json",
            "--data",
            "s3://acme/odd",
            "--no-cache",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["value"], "8783667.28");
    let opportunity = result["lineage"]["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["table"] == "opportunity")
        .unwrap();
    let files: Vec<&str> = opportunity["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(files, ["s3://acme/odd/crm/opportunity/a#1 %20b?.parquet"]);
}

// The store going away in the middle of a publish fails it within 30 s
// with an error of the data root, not one blamed on a metric's YAML, and
// leaves no publication behind.
#[test]
fn a_store_that_goes_away_mid_run_fails_the_run_as_the_datas_fault() {
    let s3 = S3::with_sample();
    let project = project();
    let out_dir = project.path().join("published");
    let mut c = s3.command(
        project.path(),
        &[
            "publish",
            "--out",
            out_dir.to_str().unwrap(),
            "--data",
            ROOT,
            "--no-cache",
        ],
    );
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = c.spawn().unwrap();
    // A publish over moto takes tens of seconds: the server dies inside it.
    std::thread::sleep(Duration::from_secs(4));
    let killed = Instant::now();
    drop(s3);
    let out = child.wait_with_output().unwrap();
    let secs = killed.elapsed().as_secs_f64();
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(secs < 30.0, "{secs} s");
    assert!(err.contains("s3://acme/extracts"), "{err}");
    assert!(
        err.contains("the store's endpoint does not answer"),
        "the cause is named: {err}"
    );
    assert!(
        !err.contains("metrics/"),
        "not blamed on a definition: {err}"
    );
    assert!(!out_dir.join("manifest.json").exists());
}

// Gate outcomes over a bucket are remembered under the objects' ETags, as
// over a folder under the files' content hashes: a query of another period
// (its own result computed again) takes the account and rate gates from the
// cache folder. A second part file landing under the account table (the
// same accounts again) changes its objects: its gate is judged afresh, and
// it now fails on the duplicated keys instead of passing from memory.
#[test]
fn gate_outcomes_over_a_bucket_are_remembered_by_the_objects_etags() {
    let s3 = S3::with_sample();
    let project = project();
    let cache = project.path().join("cache");
    let query = |period: &str| -> (bool, Vec<&'static str>, String) {
        let mut c = s3.command(
            project.path(),
            &[
                "query", "bookings", "--period", period, "--data", ROOT, "-v",
            ],
        );
        c.env("CANON_CACHE_DIR", &cache);
        let out = c.output().unwrap();
        let log = format!("{}{}", stdout(&out), stderr(&out));
        let remembered = [
            "crm/account",
            "crm/dated_conversion_rate",
            "crm/opportunity",
        ]
        .into_iter()
        .filter(|t| {
            log.lines()
                .any(|l| l.contains("gate outcome remembered") && l.contains(t))
        })
        .collect();
        (out.status.success(), remembered, log)
    };
    let (ok, remembered, log) = query("FY2026-Q1");
    assert!(ok && remembered.is_empty(), "{log}");
    let (ok, remembered, log) = query("2025-03");
    assert!(ok, "{log}");
    assert_eq!(
        remembered,
        ["crm/account", "crm/dated_conversion_rate"],
        "{log}"
    );

    let accounts =
        std::fs::read(repo().join("sample_data/crm/account/part-00000.parquet")).unwrap();
    put(
        &s3.store(),
        "extracts/crm/account/part-00001.parquet",
        accounts,
    );
    let (_, remembered, log) = query("2025-04");
    assert_eq!(remembered, ["crm/dated_conversion_rate"], "{log}");
    assert!(log.contains("crm/account"), "{log}");
}
