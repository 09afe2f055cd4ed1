//! pydatahub 2.29.0 (from PyPI) judges the server: each protocol (JSON, PB, BATCH) with each
//! compression pydatahub offers (NONE, LZ4, ZLIB, DEFLATE) runs the whole script of checks in
//! `pydatahub_compat.py` against the real server on 127.0.0.1:0: projects, TUPLE and BLOB
//! topics, shards, puts, every cursor type, reads (also in the other two protocols), the
//! schema registry, subscription offsets, split and merge.

mod common;

use common::{require_pydatahub, run_python, TestServer};

async fn judge(mode: &str, compression: &str, credentials: Option<(&str, &str)>) {
    require_pydatahub();
    let server = TestServer::start(credentials).await;
    let mut args = vec![server.endpoint(), mode.to_string(), compression.to_string()];
    if let Some((id, key)) = credentials {
        args.extend([id.to_string(), key.to_string()]);
    }
    let (ok, out) = run_python("pydatahub_compat.py", args).await;
    println!("{out}");
    assert!(ok, "pydatahub checks failed for {mode}/{compression}:\n{out}");
    assert!(out.contains(" passed, 0 failed"), "{out}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_uncompressed() {
    judge("json", "none", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_lz4() {
    judge("json", "lz4", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_zlib() {
    judge("json", "zlib", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_deflate() {
    judge("json", "deflate", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pb_uncompressed() {
    judge("pb", "none", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pb_lz4() {
    judge("pb", "lz4", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pb_zlib() {
    judge("pb", "zlib", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pb_deflate() {
    judge("pb", "deflate", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_uncompressed() {
    judge("batch", "none", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_lz4() {
    judge("batch", "lz4", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_zlib() {
    judge("batch", "zlib", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_deflate() {
    judge("batch", "deflate", None).await;
}

/// With credentials configured the server verifies pydatahub's signatures on every call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_lz4_signed() {
    judge("json", "lz4", Some(("testid", "testkey"))).await;
}

/// Batch bodies are `application/x-binary`, signed like any other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_zlib_signed() {
    judge("batch", "zlib", Some(("testid", "testkey"))).await;
}
