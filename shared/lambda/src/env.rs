//! Whether this process runs under the Lambda Runtime API, checked before `lambda_runtime`
//! reads the environment (its `Config::from_env` panics on a missing variable).

use std::collections::BTreeMap;

/// Variables the Lambda service sets and `lambda_runtime` requires, besides the API address.
const REQUIRED: [&str; 3] = [
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum LambdaEnvError {
    #[error("AWS_LAMBDA_RUNTIME_API is set ({runtime_api}), so this is Lambda mode, but {} {} not set; the Lambda service sets them, a local runtime must too", .missing.join(", "), if .missing.len() == 1 { "is" } else { "are" })]
    Missing {
        runtime_api: String,
        missing: Vec<&'static str>,
    },
    #[error("AWS_LAMBDA_FUNCTION_MEMORY_SIZE must be a whole number of MB, got {0:?}")]
    BadMemorySize(String),
}

/// The Lambda environment of this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LambdaEnv {
    /// `host:port` of the Runtime API.
    pub runtime_api: String,
    pub function_name: String,
    pub memory_mb: u32,
    pub version: String,
}

impl LambdaEnv {
    /// `Ok(None)` outside Lambda (no `AWS_LAMBDA_RUNTIME_API`), the environment when every
    /// variable is there, or an error listing what is missing.
    pub fn detect() -> Result<Option<Self>, LambdaEnvError> {
        Self::from_vars(&std::env::vars().collect())
    }

    /// [`Self::detect`] over a given set of variables.
    pub fn from_vars(vars: &BTreeMap<String, String>) -> Result<Option<Self>, LambdaEnvError> {
        let get = |name: &str| vars.get(name).filter(|v| !v.is_empty()).cloned();
        let Some(runtime_api) = get("AWS_LAMBDA_RUNTIME_API") else {
            return Ok(None);
        };
        let missing: Vec<_> = REQUIRED.into_iter().filter(|name| get(name).is_none()).collect();
        if !missing.is_empty() {
            return Err(LambdaEnvError::Missing { runtime_api, missing });
        }
        let memory = get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").unwrap_or_default();
        Ok(Some(Self {
            runtime_api,
            function_name: get("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default(),
            memory_mb: memory.parse().map_err(|_| LambdaEnvError::BadMemorySize(memory))?,
            version: get("AWS_LAMBDA_FUNCTION_VERSION").unwrap_or_default(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn no_runtime_api_means_service_mode() {
        assert_eq!(LambdaEnv::from_vars(&vars(&[("AWS_LAMBDA_FUNCTION_NAME", "f")])), Ok(None));
    }

    #[test]
    fn every_missing_variable_is_named() {
        let err = LambdaEnv::from_vars(&vars(&[("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001"), ("AWS_LAMBDA_FUNCTION_VERSION", "1")]))
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("AWS_LAMBDA_FUNCTION_NAME, AWS_LAMBDA_FUNCTION_MEMORY_SIZE are not set"), "{text}");
    }

    #[test]
    fn complete_environment_is_lambda_mode() {
        let env = LambdaEnv::from_vars(&vars(&[
            ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001"),
            ("AWS_LAMBDA_FUNCTION_NAME", "file-sink"),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512"),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!((env.function_name.as_str(), env.memory_mb), ("file-sink", 512));
        let bad = LambdaEnv::from_vars(&vars(&[
            ("AWS_LAMBDA_RUNTIME_API", "x"),
            ("AWS_LAMBDA_FUNCTION_NAME", "f"),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "lots"),
            ("AWS_LAMBDA_FUNCTION_VERSION", "1"),
        ]));
        assert_eq!(bad, Err(LambdaEnvError::BadMemorySize("lots".into())));
    }
}
