//! Backend selection at run time among the backends compiled into this build.

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::{CoreError, Result};

/// A Burn backend that profundo knows how to start.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// burn-flex: pure-Rust CPU backend with SIMD and threads (the default).
    #[default]
    Flex,
    /// burn-ndarray: pure-Rust CPU backend (deprecated upstream, slow convolutions).
    Ndarray,
    /// burn-tch: LibTorch, CPU or CUDA (needs the `tch` cargo feature).
    Tch,
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Flex => "flex",
            Self::Ndarray => "ndarray",
            Self::Tch => "tch",
        })
    }
}

impl std::str::FromStr for BackendKind {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "flex" => Ok(Self::Flex),
            "ndarray" => Ok(Self::Ndarray),
            "tch" => Ok(Self::Tch),
            other => Err(CoreError::BackendUnavailable {
                name: other.to_string(),
                hint: "known backends are `flex` (default), `ndarray` and `tch`".into(),
            }),
        }
    }
}

/// The backends compiled into this build.
pub fn available() -> Vec<BackendKind> {
    vec![BackendKind::Flex, BackendKind::Ndarray]
}

/// Returns the inference device for `kind` on `device` (`"cpu"`, or `"cuda:N"` for tch).
///
/// Asking for a backend that was not compiled in is an error that says how to enable it.
pub fn device(kind: BackendKind, device: &str) -> Result<Device> {
    match kind {
        BackendKind::Flex | BackendKind::Ndarray if device != "cpu" => {
            Err(CoreError::BackendUnavailable {
                name: format!("{kind} on {device}"),
                hint: format!("`{kind}` runs on the CPU only; use `device = \"cpu\"`"),
            })
        }
        BackendKind::Flex => Ok(Device::flex()),
        #[allow(deprecated)]
        BackendKind::Ndarray => Ok(Device::ndarray()),
        BackendKind::Tch => Err(CoreError::BackendUnavailable {
            name: "tch".into(),
            hint: "this build has no LibTorch support; it arrives with the `tch` cargo \
                   feature (`cargo build --release --features tch`). Use `backend = \"flex\"`."
                .into(),
        }),
    }
}

/// Returns the training (autodiff) device for `kind` on `device`.
pub fn train_device(kind: BackendKind, device: &str) -> Result<Device> {
    Ok(self::device(kind, device)?.autodiff())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_and_missing_backends_are_clear_errors() {
        let err = "cuda".parse::<BackendKind>().unwrap_err().to_string();
        assert!(err.contains("known backends"), "{err}");
        let err = device(BackendKind::Tch, "cpu").unwrap_err().to_string();
        assert!(err.contains("--features tch"), "{err}");
        let err = device(BackendKind::Flex, "cuda:0").unwrap_err().to_string();
        assert!(err.contains("CPU only"), "{err}");
    }

    #[test]
    fn flex_is_the_default_and_available() {
        assert_eq!(BackendKind::default(), BackendKind::Flex);
        assert!(device(BackendKind::Flex, "cpu").is_ok());
    }
}
