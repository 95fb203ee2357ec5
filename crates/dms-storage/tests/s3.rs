//! The orchestrating side and the provider's side against a real S3 server (`s3s-fs`):
//! credentials checked, inputs staged through presigned GETs (prefixes expanded, sizes
//! and MD5 checked), outputs published through presigned PUTs, multipart included,
//! and refusals worded for the user.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use dms_ensemble::model::Ensemble;
use dms_protocol::storage::{CompleteRequest, PutFile, UploadMethod};
use dms_storage::testing::S3Server;
use dms_storage::transfer::{self, Staging};
use dms_storage::{Error, Stores};
use object_store::ObjectStoreExt;
use sha2::Digest;

fn ensemble(server: &S3Server) -> Ensemble {
    let text = format!(
        "version: V1\nstorage:\n  lake: {{type: s3, endpoint: \"{}\", bucket: data}}\n\
         allocations:\n  job:\n    type: task\n    executor: wasm\n    \
         resources: {{cpu: {{cores: 1}}, ram: 64MiB}}\n    execution: {{module: m.wasm}}\n    \
         volumes: [{{source: work, target: /data}}]\n    \
         inputs: [{{from: \"lake:in/a.txt\", to: /data/in/a.txt}}, {{from: \"lake:in/set/\", to: /data/in/set/}}]\n    \
         outputs: [{{from: /data/out/, to: \"lake:results/\"}}]\n\
         nodes: {{n: {{allocations: [job]}}}}\n",
        server.endpoint
    );
    dms_ensemble::load(&text).unwrap().ensemble
}

async fn put(stores: &Stores, key: &str, body: &[u8]) {
    let bucket = stores_bucket(stores);
    bucket.client().put(&key.into(), body.to_vec().into()).await.unwrap();
}

fn stores_bucket(stores: &Stores) -> &dms_storage::Bucket {
    stores.bucket_named("lake").unwrap()
}

#[tokio::test]
async fn inputs_stage_and_outputs_publish_through_presigned_urls() {
    let dir = tempfile::tempdir().unwrap();
    let server = S3Server::start(&dir.path().join("s3"), &["data"]).unwrap();
    let e = ensemble(&server);
    let stores = Stores::connect(&e, Some(&server.credentials)).unwrap().unwrap();
    put(&stores, "in/a.txt", b"hello").await;
    put(&stores, "in/set/1.txt", b"one").await;
    put(&stores, "in/set/sub/2.txt", b"two").await;
    stores.verify(&e).await.unwrap();

    // Staging: the provider holds only the plan.
    let job = &e.allocations["job"];
    let plan = stores.inputs(job, 0).await.unwrap();
    assert_eq!(plan.next, None);
    assert_eq!(plan.files.len(), 3);
    // A head gives the MD5 (this server's listings carry no ETag; sizes are always checked).
    assert!(plan.files[0].md5.is_some(), "{:?}", plan.files[0].object);
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let files: Vec<Staging> = plan
        .files
        .iter()
        .map(|f| Staging {
            fetch: f.clone(),
            dest: dms_storage::volume::resolve(&work, f.to.strip_prefix("/data/").unwrap(), true)
                .unwrap(),
        })
        .collect();
    let done = Arc::new(AtomicU64::new(0));
    transfer::stage(&reqwest::Client::new(), files, done.clone()).await.unwrap();
    assert_eq!(std::fs::read(work.join("in/a.txt")).unwrap(), b"hello");
    assert_eq!(std::fs::read(work.join("in/set/sub/2.txt")).unwrap(), b"two");
    assert_eq!(done.load(std::sync::atomic::Ordering::Relaxed), 11);

    // Publishing: a small file in one PUT, a large one in parts.
    let small = b"result".to_vec();
    let large: Vec<u8> = (0..(70u32 << 20)).map(|i| (i % 251) as u8).collect();
    std::fs::create_dir_all(work.join("out")).unwrap();
    std::fs::write(work.join("out/r.txt"), &small).unwrap();
    std::fs::write(work.join("out/big.bin"), &large).unwrap();
    let asked = vec![
        PutFile { path: "/data/out/r.txt".into(), size: small.len() as u64 },
        PutFile { path: "/data/out/big.bin".into(), size: large.len() as u64 },
    ];
    let plan = stores.put(job, &asked).await.unwrap();
    assert!(matches!(plan.uploads[1].method, UploadMethod::Multipart { .. }));
    let http = reqwest::Client::new();
    for ((upload, name), file) in plan.uploads.iter().zip(["r.txt", "big.bin"]).zip(&asked) {
        let source = work.join("out").join(name);
        let (published, etags) =
            transfer::upload(&http, &source, file.size, upload, &done).await.unwrap();
        if let UploadMethod::Multipart { upload_id, .. } = &upload.method {
            let request = CompleteRequest {
                deployment: "d".into(),
                allocation: "job".into(),
                path: upload.path.clone(),
                upload_id: upload_id.clone(),
                etags,
                abort: false,
            };
            stores.complete(job, request).await.unwrap();
        }
        let content = if name == "r.txt" { &small } else { &large };
        assert_eq!(published.sha256, hex::encode(sha2::Sha256::digest(content)));
        let key = format!("results/{name}");
        let stored = stores_bucket(&stores).client().get(&key.as_str().into()).await.unwrap();
        assert_eq!(stored.bytes().await.unwrap().as_ref(), content.as_slice(), "{key}");
    }

    // Nothing outside the declared outputs is signed.
    let outside = vec![PutFile { path: "/data/in/a.txt".into(), size: 1 }];
    assert!(matches!(stores.put(job, &outside).await, Err(Error::Outside { .. })));
}

#[tokio::test]
async fn missing_objects_and_wrong_credentials_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let server = S3Server::start(&dir.path().join("s3"), &["data"]).unwrap();
    let e = ensemble(&server);
    let stores = Stores::connect(&e, Some(&server.credentials)).unwrap().unwrap();
    put(&stores, "in/set/1.txt", b"one").await;
    let error = stores.verify(&e).await.unwrap_err().to_string();
    assert!(error.contains("input lake:in/a.txt: no such object"), "{error}");

    let mut wrong = server.credentials.clone();
    wrong.secret_access_key = "not-the-secret".into();
    let stores = Stores::connect(&e, Some(&wrong)).unwrap().unwrap();
    let error = stores.verify(&e).await.unwrap_err();
    assert!(matches!(error, Error::Credentials { .. }), "{error}");
    assert!(error.to_string().contains("AWS_SECRET_ACCESS_KEY"), "{error}");
    assert!(!error.to_string().contains("not-the-secret"), "{error}");

    let error = Stores::connect(&e, None).unwrap_err().to_string();
    assert!(error.contains("no credentials"), "{error}");
}

#[tokio::test]
async fn a_large_prefix_comes_in_pages_that_fit_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let server = S3Server::start(&dir.path().join("s3"), &["data"]).unwrap();
    let many = dir.path().join("s3/data/in/set");
    std::fs::create_dir_all(&many).unwrap();
    let count = dms_protocol::storage::INPUT_PAGE + 44;
    for i in 0..count {
        std::fs::write(many.join(format!("{i:04}.txt")), b"x").unwrap();
    }
    std::fs::write(dir.path().join("s3/data/in/a.txt"), b"a").unwrap();
    let e = ensemble(&server);
    let stores = Stores::connect(&e, Some(&server.credentials)).unwrap().unwrap();
    let job = &e.allocations["job"];
    let mut seen = Vec::new();
    let mut from = Some(0);
    while let Some(at) = from {
        let page = stores.inputs(job, at).await.unwrap();
        assert!(page.files.len() <= dms_protocol::storage::INPUT_PAGE);
        let wire = serde_json::to_vec(&page).unwrap();
        assert!(wire.len() < 512 << 10, "a page of {} bytes", wire.len());
        seen.extend(page.files.into_iter().map(|f| f.to));
        from = page.next;
    }
    assert_eq!(seen.len(), count + 1, "every object once");
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), count + 1, "no object twice");
}

#[tokio::test]
async fn a_download_that_does_not_check_out_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let server = S3Server::start(&dir.path().join("s3"), &["data"]).unwrap();
    std::fs::create_dir_all(dir.path().join("s3/data/in/set")).unwrap();
    std::fs::write(dir.path().join("s3/data/in/a.txt"), b"hello").unwrap();
    std::fs::write(dir.path().join("s3/data/in/set/1.txt"), b"one").unwrap();
    let e = ensemble(&server);
    let stores = Stores::connect(&e, Some(&server.credentials)).unwrap().unwrap();
    let plan = stores.inputs(&e.allocations["job"], 0).await.unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let http = reqwest::Client::new();
    for (what, mut fetch) in [
        ("a wrong checksum", plan.files[0].clone()),
        ("a size the object does not have", plan.files[0].clone()),
    ] {
        if what.starts_with("a wrong") {
            fetch.md5 = Some("0".repeat(32));
        } else {
            fetch.size += 1;
        }
        let dest = work.join("a.txt");
        let staged = transfer::stage(
            &http,
            vec![Staging { fetch, dest: dest.clone() }],
            Arc::new(AtomicU64::new(0)),
        )
        .await;
        assert!(staged.is_err(), "{what} must fail the staging");
        assert!(!dest.exists(), "{what}: no file in place");
        assert!(!transfer::partial_path(&dest).exists(), "{what}: no partial file left");
    }
}
