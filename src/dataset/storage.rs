//! Datasets on object stores: `s3://` and Azure (`az://`, `abfss://`, ...) URLs get a store built
//! from the usual environment variables (`AWS_*`, `AZURE_STORAGE_*`) and registered with the
//! session, so DataFusion reads them like local files.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use datafusion::prelude::SessionContext;
use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::path::Path as StorePath;
use url::Url;

const AZURE_SCHEMES: [&str; 5] = ["az", "azure", "abfs", "abfss", "adl"];

/// A dataset location: a local path (or `file://` URL), or a URL on an object store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A path on this machine (a `file://` URL made a path).
    Local(String),
    /// A URL on an object store (`s3://`, `az://`, ...).
    Remote(Url),
}

impl Location {
    /// Tells a local path from a store URL; a malformed URL is an error naming it.
    pub fn parse(location: &str) -> Result<Self> {
        if !location.contains("://") {
            return Ok(Self::Local(location.to_owned()));
        }
        let url = Url::parse(location).with_context(|| format!("{location} is not a valid URL"))?;
        if url.scheme() == "file" {
            let path = url
                .to_file_path()
                .map_err(|()| anyhow::anyhow!("{location} is not a local file URL"))?;
            return Ok(Self::Local(path.display().to_string()));
        }
        Ok(Self::Remote(url))
    }
}

/// The store `url` lives on: the one registered with `ctx` for its bucket or container, else one
/// built from the environment and registered, so that a dataset's checks, its Delta log and its
/// scans share one store (and its credentials) however many times they ask.
pub fn register_store(ctx: &SessionContext, url: &Url) -> Result<Arc<dyn ObjectStore>> {
    let scheme = url.scheme();
    let root = Url::parse(&format!("{scheme}://{}", url.authority()))
        .with_context(|| format!("{url} has no bucket or container"))?;
    if let Ok(store) = ctx.runtime_env().object_store_registry.get_store(&root) {
        return Ok(store);
    }
    let store: Arc<dyn ObjectStore> = if matches!(scheme, "s3" | "s3a") {
        Arc::new(
            AmazonS3Builder::from_env()
                .with_url(url.as_str())
                .build()
                .with_context(|| {
                    format!("cannot set up S3 for {url}: set AWS_REGION and AWS credentials")
                })?,
        )
    } else if AZURE_SCHEMES.contains(&scheme) {
        Arc::new(
            MicrosoftAzureBuilder::from_env()
                .with_url(url.as_str())
                .build()
                .with_context(|| {
                    format!(
                        "cannot set up Azure storage for {url}: set AZURE_STORAGE_ACCOUNT_NAME and \
                         AZURE_STORAGE_ACCOUNT_KEY (or another Azure credential)"
                    )
                })?,
        )
    } else {
        bail!(
            "cannot read {scheme}:// URLs: give a local path, file://, s3://, az:// or abfss:// URL"
        );
    };
    ctx.register_object_store(&root, Arc::clone(&store));
    Ok(store)
}

/// The names of the folders directly under `url` on `store`.
pub async fn subfolders(store: &dyn ObjectStore, url: &Url) -> Result<Vec<String>> {
    let prefix = StorePath::from(url.path().trim_matches('/'));
    let listing = store
        .list_with_delimiter(Some(&prefix))
        .await
        .with_context(|| format!("cannot list {url}"))?;
    Ok(listing
        .common_prefixes
        .iter()
        .filter_map(|folder| folder.filename().map(str::to_owned))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_urls_are_local_paths() {
        assert_eq!(
            Location::parse("file:///data/sus").ok(),
            Some(Location::Local("/data/sus".into()))
        );
        assert_eq!(
            Location::parse("data-samples").ok(),
            Some(Location::Local("data-samples".into()))
        );
        assert!(matches!(
            Location::parse("s3://bucket/sus/"),
            Ok(Location::Remote(_))
        ));
    }

    #[test]
    fn unknown_schemes_are_refused_by_name() {
        let ctx = SessionContext::new();
        let url = Url::parse("ftp://host/sus").expect("a valid URL");
        let error = register_store(&ctx, &url).err().map(|e| e.to_string());
        assert!(error.is_some_and(|e| e.contains("cannot read ftp:// URLs")));
    }

    #[test]
    fn one_store_serves_every_path_in_a_bucket() {
        let ctx = SessionContext::new();
        let store = |location: &str| {
            let url = Url::parse(location).expect("a valid URL");
            register_store(&ctx, &url).expect("a store for the URL")
        };
        let first = store("s3://sus-bucket/opa/");
        assert!(Arc::ptr_eq(
            &first,
            &store("s3://sus-bucket/opa/_delta_log/")
        ));
        assert!(Arc::ptr_eq(&first, &store("s3://sus-bucket/apcs/")));
        assert!(!Arc::ptr_eq(&first, &store("s3://other-bucket/opa/")));
    }
}
