//! `http`: POST the batch's JSON to a URL; any 2xx acknowledges it.

use std::time::Duration;

use super::{excerpt, DeliveryError};

#[derive(Debug)]
pub struct HttpTarget {
    http: reqwest::Client,
    url: String,
}

impl HttpTarget {
    pub fn new(url: impl Into<String>, timeout: Duration) -> Result<Self, DeliveryError> {
        let url = url.into();
        let http = super::http_client(&url, timeout)?;
        Ok(HttpTarget { http, url })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub async fn deliver(&self, body: &[u8]) -> Result<(), DeliveryError> {
        let transport = |source| DeliveryError::Transport { target: self.url.clone(), source };
        let response = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            .map_err(transport)?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let answer = response.bytes().await.map(|b| excerpt(&b)).unwrap_or_default();
        Err(DeliveryError::Status { target: self.url.clone(), status: status.as_u16(), body: answer })
    }
}
