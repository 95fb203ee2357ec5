//! Staging and publishing throughput against `object_store` used directly, on the same
//! real S3 server (`s3s-fs` on loopback) in the same process, rounds interleaved so
//! that both see the same machine: `cargo bench -p dms-storage --bench staging`.
//!
//! - staging: `Stores::inputs` (a head and a presign) then `transfer::stage` (GET through
//!   the presigned URL, MD5 and size checked, written to a partial file, fsynced,
//!   renamed) against `ObjectStore::get` streamed to a file and fsynced;
//! - publishing: `Stores::put` then `transfer::upload` (SHA-256 while sending; parts of
//!   16 MiB above 64 MiB, completed by the orchestrating side) against
//!   `ObjectStore::put_multipart` of the same file in parts of the same size.
//!
//! `DMS_BENCH_MIB` sets the object size (default 256), `DMS_BENCH_ROUNDS` the rounds
//! (default 5). Prints medians and the ratio dms / direct.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use dms_protocol::storage::{CompleteRequest, PutFile, UploadMethod};
use dms_storage::Stores;
use dms_storage::testing::S3Server;
use dms_storage::transfer::{self, Staging};
use futures::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStoreExt, WriteMultipart};
use tokio::io::AsyncWriteExt;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn ensemble(endpoint: &str) -> dms_ensemble::model::Ensemble {
    let text = format!(
        "version: V1\nstorage:\n  lake: {{type: s3, endpoint: \"{endpoint}\", bucket: data}}\n\
         allocations:\n  job:\n    type: task\n    executor: wasm\n    \
         resources: {{cpu: {{cores: 1}}, ram: 64MiB}}\n    execution: {{module: m.wasm}}\n    \
         volumes: [{{source: work, target: /data}}]\n    \
         inputs: [{{from: \"lake:bench/in.bin\", to: /data/in.bin}}]\n    \
         outputs: [{{from: /data/out.bin, to: \"lake:bench/out.bin\"}}]\n\
         nodes: {{n: {{allocations: [job]}}}}\n"
    );
    dms_ensemble::load(&text).expect("bench ensemble").ensemble
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn rate(bytes: u64, took: Duration) -> f64 {
    bytes as f64 / (1 << 20) as f64 / took.as_secs_f64()
}

#[tokio::main]
async fn main() {
    let (mib, rounds) = (env("DMS_BENCH_MIB", 256), env("DMS_BENCH_ROUNDS", 5) as usize);
    let size = mib << 20;
    let dir = tempfile::tempdir().expect("tempdir");
    let server = S3Server::start(&dir.path().join("s3"), &["data"]).expect("s3s-fs runs");
    let e = ensemble(&server.endpoint);
    let stores = Stores::connect(&e, Some(&server.credentials)).expect("opens").expect("stores");
    let client = stores.bucket_named("lake").expect("lake").client().clone();
    let job = e.allocations["job"].clone();
    let body: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    client.put(&Path::from("bench/in.bin"), body.clone().into()).await.expect("put");
    let local = dir.path().join("out.bin");
    std::fs::write(&local, &body).expect("local file");
    drop(body);
    let http = reqwest::Client::new();

    let (mut direct_in, mut dms_in, mut direct_out, mut dms_out) = (vec![], vec![], vec![], vec![]);
    for round in 0..rounds {
        let target = dir.path().join(format!("direct-{round}.bin"));
        let started = Instant::now();
        let mut stream = client.get(&Path::from("bench/in.bin")).await.expect("get").into_stream();
        let mut file = tokio::fs::File::create(&target).await.expect("create");
        while let Some(chunk) = stream.next().await {
            file.write_all(&chunk.expect("chunk")).await.expect("write");
        }
        file.sync_all().await.expect("sync");
        direct_in.push(started.elapsed());
        std::fs::remove_file(&target).expect("rm");

        let target = dir.path().join(format!("dms-{round}.bin"));
        let started = Instant::now();
        let plan = stores.inputs(&job, 0).await.expect("plan");
        let files = plan.files.into_iter().map(|fetch| Staging { fetch, dest: target.clone() });
        let done = Arc::new(AtomicU64::new(0));
        transfer::stage(&http, files.collect(), done).await.expect("staged");
        dms_in.push(started.elapsed());
        std::fs::remove_file(&target).expect("rm");

        let started = Instant::now();
        let data = tokio::fs::read(&local).await.expect("read");
        let upload = client.put_multipart(&Path::from("bench/direct.bin")).await.expect("mpu");
        let mut writer = WriteMultipart::new_with_chunk_size(upload, 16 << 20);
        writer.write(&data);
        writer.finish().await.expect("finished");
        direct_out.push(started.elapsed());

        let started = Instant::now();
        let asked = [PutFile { path: "/data/out.bin".into(), size }];
        let plan = stores.put(&job, &asked).await.expect("plan");
        let done = Arc::new(AtomicU64::new(0));
        let (_, etags) =
            transfer::upload(&http, &local, size, &plan.uploads[0], &done).await.expect("up");
        if let UploadMethod::Multipart { upload_id, .. } = &plan.uploads[0].method {
            let request = CompleteRequest {
                deployment: "bench".into(),
                allocation: "job".into(),
                path: "/data/out.bin".into(),
                upload_id: upload_id.clone(),
                etags,
                abort: false,
            };
            stores.complete(&job, request).await.expect("completed");
        }
        dms_out.push(started.elapsed());
    }
    for (what, direct, dms) in [("staging", direct_in, dms_in), ("publishing", direct_out, dms_out)]
    {
        let (direct, dms) = (rate(size, median(direct)), rate(size, median(dms)));
        println!(
            "{what} {mib} MiB (median of {rounds}): object_store {direct:.0} MiB/s, dms {dms:.0} MiB/s: {:.2}x",
            dms / direct
        );
    }
}
