//! Object-store helpers for the object-sink tests: a local S3 server, copies of what readers
//! of a prefix see, and the open multipart uploads.

use std::path::{Path, PathBuf};
use std::process::Command;

use cdc_state::s3::testing::LocalS3Server;
use cdc_state::s3::{list_uploads, OpenUpload, S3Connection};
use serde_json::Value as Json;

/// moto, required (installed by scripts/install-test-deps.sh).
pub fn moto() -> LocalS3Server {
    LocalS3Server::moto().unwrap_or_else(|e| {
        panic!("{e} (install it with `pip install 'moto[server]'`, see scripts/install-test-deps.sh)")
    })
}

/// Every object key of `bucket` under `prefix`, sorted (what a reader can see).
pub fn keys(connection: &S3Connection, bucket: &str, prefix: &str) -> Vec<String> {
    let client = connection.client().clone();
    let (bucket, prefix) = (bucket.to_owned(), prefix.to_owned());
    let mut keys = connection
        .block_on(async move {
            let mut keys = Vec::new();
            let mut token = None;
            loop {
                let page = client
                    .list_objects_v2()
                    .bucket(&bucket)
                    .prefix(&prefix)
                    .set_continuation_token(token)
                    .send()
                    .await
                    .expect("ListObjectsV2");
                keys.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_owned)));
                match page.next_continuation_token() {
                    Some(next) => token = Some(next.to_owned()),
                    None => break,
                }
            }
            keys
        })
        .expect("runtime");
    keys.sort();
    keys
}

pub fn get(connection: &S3Connection, bucket: &str, key: &str) -> Vec<u8> {
    let client = connection.client().clone();
    let (bucket, key) = (bucket.to_owned(), key.to_owned());
    connection
        .block_on(async move {
            let output = client.get_object().bucket(bucket).key(key).send().await.expect("GetObject");
            output.body.collect().await.expect("body").into_bytes().to_vec()
        })
        .expect("runtime")
}

/// Copies every object under `prefix` to `dir` (keys relative to the prefix); returns `dir`.
pub fn download(connection: &S3Connection, bucket: &str, prefix: &str, dir: &Path) -> PathBuf {
    for key in keys(connection, bucket, prefix) {
        let relative = key.strip_prefix(prefix).expect("listed under the prefix");
        let path = dir.join(relative);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        std::fs::write(&path, get(connection, bucket, &key)).expect("write copy");
    }
    dir.to_path_buf()
}

pub fn uploads(connection: &S3Connection, bucket: &str, prefix: &str) -> Vec<OpenUpload> {
    let client = connection.client().clone();
    let (bucket, prefix) = (bucket.to_owned(), prefix.to_owned());
    connection
        .block_on(async move { list_uploads(&client, &bucket, &prefix).await })
        .expect("runtime")
        .expect("ListMultipartUploads")
}

/// What pyarrow reads in the files under `root` (a local copy): (files, [id, _source_pos]).
pub fn pyarrow_rows(root: &Path, format: &str, compression: &str) -> (Vec<String>, Vec<(i64, String)>) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/read_objects.py");
    let output = Command::new("python3")
        .arg(&script)
        .arg(root)
        .arg(format)
        .arg(compression)
        .output()
        .expect("python3 runs (needs pyarrow)");
    assert!(
        output.status.success(),
        "read_objects.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let document: Json = serde_json::from_slice(&output.stdout).expect("reader prints JSON");
    let files = document["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| f.as_str().expect("file").to_owned())
        .collect();
    let rows = document["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| (r[0].as_i64().expect("id"), r[1].as_str().expect("_source_pos").to_owned()))
        .collect();
    (files, rows)
}
