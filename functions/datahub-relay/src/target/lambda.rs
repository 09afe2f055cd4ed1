//! `lambda`: the Lambda Invoke API (`POST {endpoint}/2015-03-31/functions/{name}/invocations`,
//! synchronous `RequestResponse`), signed with SigV4 when credentials are given. A 2xx answer
//! without `X-Amz-Function-Error` acknowledges the batch; with it, the function ran and
//! failed (unhandled error, timeout, out of memory): retryable like a 5xx.

use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;

use super::{excerpt, DeliveryError};

/// Static AWS credentials (from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_SESSION_TOKEN`).
#[derive(Clone)]
pub struct AwsCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsCredentials").field("access_key_id", &self.access_key_id).finish_non_exhaustive()
    }
}

#[derive(Debug)]
pub struct LambdaTarget {
    http: reqwest::Client,
    function: String,
    url: String,
    region: String,
    credentials: Option<AwsCredentials>,
}

/// Percent-encodes a path segment (a function ARN has `:`), as the AWS SDKs do.
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl LambdaTarget {
    /// `endpoint` without a trailing `/` (`https://lambda.us-east-1.amazonaws.com`, or a
    /// local emulator's URL).
    pub fn new(endpoint: &str, function: &str, region: &str, credentials: Option<AwsCredentials>, timeout: Duration) -> Result<Self, DeliveryError> {
        let url = format!("{}/2015-03-31/functions/{}/invocations", endpoint.trim_end_matches('/'), encode_segment(function));
        let http = super::http_client(&url, timeout)?;
        Ok(LambdaTarget { http, function: function.to_string(), url, region: region.to_string(), credentials })
    }

    pub fn function(&self) -> &str {
        &self.function
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The SigV4 headers for this request (none without credentials).
    fn signature_headers(&self, headers: &[(&str, &str)], body: &[u8]) -> Result<Vec<(String, String)>, DeliveryError> {
        let Some(c) = &self.credentials else { return Ok(Vec::new()) };
        let request_err = |reason: String| DeliveryError::Request { target: self.url.clone(), reason };
        let identity = aws_credential_types::Credentials::new(&c.access_key_id, &c.secret_access_key, c.session_token.clone(), None, "datahub-relay").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("lambda")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| request_err(format!("SigV4 parameters: {e}")))?
            .into();
        let signable = SignableRequest::new("POST", &self.url, headers.iter().copied(), SignableBody::Bytes(body))
            .map_err(|e| request_err(format!("SigV4: {e}")))?;
        let (instructions, _signature) = sign(signable, &params).map_err(|e| request_err(format!("SigV4: {e}")))?.into_parts();
        Ok(instructions.headers().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    pub async fn deliver(&self, body: &[u8]) -> Result<(), DeliveryError> {
        let headers = [("content-type", "application/json"), ("x-amz-invocation-type", "RequestResponse")];
        let signed = self.signature_headers(&headers, body)?;
        let mut request = self.http.post(&self.url).body(body.to_vec());
        for (k, v) in headers {
            request = request.header(k, v);
        }
        for (k, v) in &signed {
            request = request.header(k.as_str(), v.as_str());
        }
        let response = request.send().await.map_err(|source| DeliveryError::Transport { target: self.url.clone(), source })?;
        let status = response.status();
        let function_error = response.headers().get("x-amz-function-error").map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let answer = response.bytes().await.map(|b| excerpt(&b)).unwrap_or_default();
        if !status.is_success() {
            return Err(DeliveryError::Status { target: self.url.clone(), status: status.as_u16(), body: answer });
        }
        if let Some(kind) = function_error {
            return Err(DeliveryError::FunctionError { function: self.function.clone(), kind, body: answer });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invoke_url_encodes_arns() {
        let t = LambdaTarget::new("http://127.0.0.1:9001/", "arn:aws:lambda:us-east-1:123456789012:function:f", "us-east-1", None, Duration::from_secs(1)).unwrap();
        assert_eq!(t.url(), "http://127.0.0.1:9001/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Af/invocations");
    }

    #[test]
    fn signs_only_with_credentials() {
        let unsigned = LambdaTarget::new("http://127.0.0.1:1", "f", "eu-west-1", None, Duration::from_secs(1)).unwrap();
        assert!(unsigned.signature_headers(&[("content-type", "application/json")], b"{}").unwrap().is_empty());
        let creds = AwsCredentials { access_key_id: "AKIDEXAMPLE".into(), secret_access_key: "secret".into(), session_token: Some("tok".into()) };
        let signed = LambdaTarget::new("http://127.0.0.1:1", "f", "eu-west-1", Some(creds), Duration::from_secs(1)).unwrap();
        let headers = signed.signature_headers(&[("content-type", "application/json")], b"{}").unwrap();
        let get = |name: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
        let auth = get("authorization").expect("an Authorization header");
        assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"), "{auth}");
        assert!(auth.contains("/eu-west-1/lambda/aws4_request"), "{auth}");
        assert!(get("x-amz-date").is_some());
        assert_eq!(get("x-amz-security-token").as_deref(), Some("tok"));
    }
}
