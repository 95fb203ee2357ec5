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
    let plan = stores.inputs(job).await.unwrap();
    assert_eq!(plan.files.len(), 3);
    // A head gives the MD5 (this server's listings carry no ETag; sizes are always checked).
    assert!(plan.files[0].md5.is_some(), "{:?}", plan.files[0].object);
    let work = dir.path().join("work");
    let files: Vec<Staging> = plan
        .files
        .iter()
        .map(|f| Staging {
            fetch: f.clone(),
            dest: work.join(f.to.strip_prefix("/data/").unwrap()),
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
    for (upload, name) in plan.uploads.iter().zip(["r.txt", "big.bin"]) {
        let (published, etags) =
            transfer::upload(&http, &work.join("out").join(name), upload, &done).await.unwrap();
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
