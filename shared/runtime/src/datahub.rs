//! The DataHub client every DataHub-reading function builds from `datahub.*`.

use std::time::Duration;

use anyhow::Context as _;
use cdc_config::DatahubConfig;
use cdc_datahub::DatahubClient;

/// A client for `url` with the credentials and `sslVerify` of `settings`; `max_retries` and
/// `timeout` are the caller's (a health probe wants none and a short one).
pub fn datahub_client(url: &str, settings: &DatahubConfig, max_retries: u32, timeout: Duration) -> anyhow::Result<DatahubClient> {
    let mut builder = DatahubClient::builder(url).with_max_retries(max_retries).with_timeout(timeout).with_ssl_verify(settings.ssl_verify);
    if let (Some(id), Some(key)) = (&settings.access_id, &settings.access_key) {
        builder = builder.with_credentials(id.expose(), key.expose());
    }
    builder.build().with_context(|| format!("DATAHUB_ENDPOINT={url}"))
}
