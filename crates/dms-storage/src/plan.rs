//! The orchestrating node's side: the ensemble's stores opened with the user's
//! credentials ([`Stores`]), checked at submission, and the plans a provider gets —
//! presigned GETs of an allocation's inputs, presigned PUTs of its output files at the
//! keys the ensemble's `outputs` give them (a file outside them is refused).

use std::collections::BTreeMap;
use std::time::Duration;

use dms_ensemble::model::{Allocation, Ensemble, object_ref};
use dms_protocol::storage::{
    CompleteRequest, Credentials, Fetch, INPUT_PAGE, InputPlan, PutFile, PutPlan, Upload,
    UploadMethod,
};

use crate::{Bucket, Error};

/// How long a presigned URL lasts: long enough for one transfer, short enough that a
/// leaked one soon opens nothing.
pub const URL_TTL: Duration = Duration::from_secs(3600);
/// Files above this size go up in parts.
pub const MULTIPART_FROM: u64 = 64 << 20;
/// The smallest part (S3 allows 5 MiB; fewer, larger parts cost fewer round trips).
pub const PART_SIZE: u64 = 16 << 20;
/// Most parts per upload: S3 allows 10,000, but every part's presigned URL travels in
/// one answer, which must stay within one message.
const MAX_PARTS: u64 = 500;
/// S3's largest part.
const MAX_PART_SIZE: u64 = 5 << 30;

/// The stores an ensemble names, opened.
#[derive(Debug)]
pub struct Stores {
    buckets: BTreeMap<String, Bucket>,
}

impl Stores {
    /// Opens every store of `ensemble` with `credentials`; `None` when it names none.
    pub fn connect(
        ensemble: &Ensemble,
        credentials: Option<&Credentials>,
    ) -> Result<Option<Stores>, Error> {
        if ensemble.storage.is_empty() {
            return Ok(None);
        }
        let Some(credentials) = credentials else {
            let names: Vec<&str> = ensemble.storage.keys().map(String::as_str).collect();
            return Err(Error::NoCredentials { stores: names.join(", ") });
        };
        let buckets = ensemble
            .storage
            .iter()
            .map(|(name, store)| Ok((name.clone(), Bucket::connect(name, store, credentials)?)))
            .collect::<Result<_, Error>>()?;
        Ok(Some(Stores { buckets }))
    }

    /// Checks, before anything is placed, that every store accepts the credentials and
    /// every input exists (a prefix has at least one object).
    pub async fn verify(&self, ensemble: &Ensemble) -> Result<(), Error> {
        for bucket in self.buckets.values() {
            bucket.check().await?;
        }
        for allocation in ensemble.allocations.values() {
            for input in &allocation.inputs {
                let (bucket, key) = self.bucket(&input.from)?;
                bucket.objects(key).await?;
            }
        }
        Ok(())
    }

    /// Presigned GETs of `allocation`'s inputs, prefixes expanded: the files from
    /// `from` on, at most [`INPUT_PAGE`], and where the next page starts.
    pub async fn inputs(&self, allocation: &Allocation, from: usize) -> Result<InputPlan, Error> {
        let mut files = Vec::new();
        let mut index = 0usize;
        for input in &allocation.inputs {
            let (bucket, key) = self.bucket(&input.from)?;
            for meta in bucket.objects(key).await? {
                index += 1;
                if index <= from {
                    continue;
                }
                if files.len() == INPUT_PAGE {
                    return Ok(InputPlan { files, next: Some(from + INPUT_PAGE) });
                }
                let found = meta.location.to_string();
                let to = match key.strip_suffix('/') {
                    Some(prefix) => {
                        let rest = found.strip_prefix(prefix).unwrap_or(&found);
                        format!(
                            "{}/{}",
                            input.to.trim_end_matches('/'),
                            rest.trim_start_matches('/')
                        )
                    }
                    None if input.to.ends_with('/') => {
                        let base = found.rsplit('/').next().unwrap_or(&found);
                        format!("{}{base}", input.to)
                    }
                    None => input.to.clone(),
                };
                let md5 = meta
                    .e_tag
                    .as_deref()
                    .map(|t| t.trim_matches('"').to_ascii_lowercase())
                    .filter(|t| t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit()));
                files.push(Fetch {
                    object: format!("{}:{found}", bucket.name()),
                    url: bucket.presign_get(&meta.location, URL_TTL).await?,
                    to,
                    size: meta.size,
                    md5,
                });
            }
        }
        Ok(InputPlan { files, next: None })
    }

    /// Presigned uploads of `files` of `allocation`, each at the key its output gives.
    pub async fn put(&self, allocation: &Allocation, files: &[PutFile]) -> Result<PutPlan, Error> {
        let mut uploads = Vec::with_capacity(files.len());
        for file in files {
            let object = output_object(allocation, &file.path)?;
            let (bucket, key) = self.bucket(&object)?;
            if file.size > MAX_PARTS * MAX_PART_SIZE {
                return Err(Error::Outside {
                    path: file.path.clone(),
                    reason: format!("{} bytes is more than one upload carries", file.size),
                });
            }
            let method = if file.size <= MULTIPART_FROM {
                UploadMethod::Single { url: bucket.presign_put(key, URL_TTL).await? }
            } else {
                let part_size = part_size(file.size);
                let upload_id = bucket.start_multipart(key).await?;
                let mut urls = Vec::new();
                for number in 1..=file.size.div_ceil(part_size) as usize {
                    urls.push(bucket.presign_part(key, &upload_id, number, URL_TTL).await?);
                }
                UploadMethod::Multipart { upload_id, part_size, urls }
            };
            uploads.push(Upload { path: file.path.clone(), object, method });
        }
        Ok(PutPlan { uploads })
    }

    /// Completes or aborts the multipart upload of one of `allocation`'s output files.
    pub async fn complete(
        &self,
        allocation: &Allocation,
        request: CompleteRequest,
    ) -> Result<(), Error> {
        let object = output_object(allocation, &request.path)?;
        let (bucket, key) = self.bucket(&object)?;
        if request.abort {
            return bucket.abort(key, &request.upload_id).await;
        }
        bucket.complete(key, &request.upload_id, request.etags).await
    }

    /// The store named `name`.
    pub fn bucket_named(&self, name: &str) -> Option<&Bucket> {
        self.buckets.get(name)
    }

    fn bucket<'a>(&self, object: &'a str) -> Result<(&Bucket, &'a str), Error> {
        let (store, key) = object_ref(object).ok_or_else(|| Error::Outside {
            path: object.into(),
            reason: "not a <store>:<key> reference".into(),
        })?;
        let bucket = self.buckets.get(store).ok_or_else(|| Error::Outside {
            path: object.into(),
            reason: format!("the ensemble has no store {store}"),
        })?;
        Ok((bucket, key))
    }
}

/// Bytes per part of a file of `size`: [`PART_SIZE`], or more where that would make
/// more parts than S3 allows (rounded up to MiB).
pub fn part_size(size: u64) -> u64 {
    let least = size.div_ceil(MAX_PARTS).div_ceil(1 << 20) << 20;
    least.max(PART_SIZE)
}

/// `<store>:<key>` of the file at workload `path`, from the allocation's `outputs`: a
/// file output's own target, or a directory output's prefix plus the path below it.
/// Anything else — a path under no output, one with `..` — is refused: a provider can
/// only ever write the keys the ensemble declared.
pub fn output_object(allocation: &Allocation, path: &str) -> Result<String, Error> {
    let outside = |reason: &str| Error::Outside { path: path.into(), reason: reason.into() };
    if !path.starts_with('/') || path.split('/').any(|p| p == ".." || p == ".") {
        return Err(outside("not a plain absolute path"));
    }
    for output in &allocation.outputs {
        if let Some(dir) = output.from.strip_suffix('/') {
            if let Some(rest) = path.strip_prefix(dir).and_then(|r| r.strip_prefix('/'))
                && !rest.is_empty()
            {
                return Ok(format!("{}{rest}", output.to));
            }
        } else if output.from == path {
            return Ok(output.to.clone());
        }
    }
    Err(outside("under none of the allocation's outputs"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use dms_ensemble::model::Output;

    fn allocation(outputs: &[(&str, &str)]) -> Allocation {
        let text = "version: V1\nallocations:\n  a:\n    type: task\n    executor: wasm\n    \
                    resources: {cpu: {cores: 1}, ram: 64MiB}\n    execution: {module: m.wasm}\n\
                    nodes: {n: {allocations: [a]}}\n";
        let ensemble = dms_ensemble::load(text).expect("loads").ensemble;
        let mut a = ensemble.allocations["a"].clone();
        a.outputs = outputs
            .iter()
            .map(|(from, to)| Output { from: (*from).into(), to: (*to).into() })
            .collect();
        a
    }

    #[test]
    fn output_keys_come_from_the_ensemble_and_nothing_else_is_signed() {
        let a = allocation(&[("/data/out/", "lake:results/"), ("/data/sum.txt", "lake:s/sum")]);
        assert_eq!(output_object(&a, "/data/out/x/y.txt").expect("mapped"), "lake:results/x/y.txt");
        assert_eq!(output_object(&a, "/data/sum.txt").expect("mapped"), "lake:s/sum");
        for refused in
            ["/data/out/../secret", "/data/other", "/data/out/", "data/out/x", "/data/out"]
        {
            assert!(output_object(&a, refused).is_err(), "{refused} must be refused");
        }
    }

    #[test]
    fn parts_stay_within_s3_limits() {
        assert_eq!(part_size(100 << 20), PART_SIZE);
        let huge = 1u64 << 40; // 1 TiB
        assert!(huge.div_ceil(part_size(huge)) <= MAX_PARTS);
        assert_eq!(part_size(huge) % (1 << 20), 0);
    }
}
