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
    let mut kinds = vec![BackendKind::Flex, BackendKind::Ndarray];
    if cfg!(feature = "tch") {
        kinds.push(BackendKind::Tch);
    }
    kinds
}

/// Returns the inference device for `kind` on `device` (`"cpu"`, or `"cuda:N"` for tch).
///
/// Asking for a backend that was not compiled in is an error that says how to enable it.
pub fn device(kind: BackendKind, device: &str) -> Result<Device> {
    match kind {
        BackendKind::Flex | BackendKind::Ndarray if device != "cpu" => Err(CoreError::BadDevice {
            device: device.into(),
            hint: format!("`{kind}` runs on the CPU only; use `device = \"cpu\"`"),
        }),
        BackendKind::Flex => Ok(Device::flex()),
        #[allow(deprecated)]
        BackendKind::Ndarray => Ok(Device::ndarray()),
        BackendKind::Tch => libtorch_device(device),
    }
}

/// The LibTorch device for `"cpu"`, `"cuda"` or `"cuda:N"`.
#[cfg(feature = "tch")]
#[allow(deprecated)] // burn marks burn-tch deprecated; it is still LibTorch's only route.
fn libtorch_device(device: &str) -> Result<Device> {
    match cuda_index(device)? {
        None => Ok(Device::libtorch()),
        Some(index) => {
            let count = tch::Cuda::device_count().max(0) as usize;
            if index >= count {
                return Err(CoreError::BadDevice {
                    device: device.into(),
                    hint: format!(
                        "LibTorch sees {count} CUDA device(s) on this machine; use \
                         `device = \"cpu\"` or an index below {count}"
                    ),
                });
            }
            Ok(Device::libtorch_cuda(index))
        }
    }
}

#[cfg(not(feature = "tch"))]
fn libtorch_device(_device: &str) -> Result<Device> {
    Err(CoreError::BackendUnavailable {
        name: "tch".into(),
        hint: "this build has no LibTorch support; it arrives with the `tch` cargo \
               feature (`scripts/with-torch.sh cargo build --release --features tch`, \
               see the README). Use `backend = \"flex\"`."
            .into(),
    })
}

/// Sets LibTorch's intra-op thread count (what `torch.set_num_threads` sets); does nothing
/// in a build without the `tch` feature.
pub fn set_libtorch_threads(threads: usize) {
    #[cfg(feature = "tch")]
    tch::set_num_threads(threads.try_into().unwrap_or(i32::MAX));
    #[cfg(not(feature = "tch"))]
    let _ = threads;
}

/// Parses a device name: `"cpu"` gives `None`, `"cuda"` and `"cuda:N"` the CUDA index.
pub fn cuda_index(device: &str) -> Result<Option<usize>> {
    let bad = || CoreError::BadDevice {
        device: device.into(),
        hint: "devices are `cpu`, `cuda` or `cuda:N` (N = 0, 1, ...)".into(),
    };
    match device {
        "cpu" => Ok(None),
        "cuda" => Ok(Some(0)),
        _ => match device.strip_prefix("cuda:") {
            Some(index) => index.parse().map(Some).map_err(|_| bad()),
            None => Err(bad()),
        },
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
    fn device_names_parse() {
        assert_eq!(cuda_index("cpu").unwrap(), None);
        assert_eq!(cuda_index("cuda").unwrap(), Some(0));
        assert_eq!(cuda_index("cuda:3").unwrap(), Some(3));
        for bad in ["gpu", "cuda:", "cuda:x", "CPU"] {
            let err = cuda_index(bad).unwrap_err().to_string();
            assert!(err.contains("cuda:N"), "{bad}: {err}");
        }
    }

    #[test]
    fn unknown_and_missing_backends_are_clear_errors() {
        let err = "cuda".parse::<BackendKind>().unwrap_err().to_string();
        assert!(err.contains("known backends"), "{err}");
        #[cfg(not(feature = "tch"))]
        {
            let err = device(BackendKind::Tch, "cpu").unwrap_err().to_string();
            assert!(err.contains("--features tch"), "{err}");
        }
        let err = device(BackendKind::Flex, "cuda:0").unwrap_err().to_string();
        assert!(err.contains("CPU only"), "{err}");
    }

    #[test]
    fn flex_is_the_default_and_available() {
        assert_eq!(BackendKind::default(), BackendKind::Flex);
        assert!(device(BackendKind::Flex, "cpu").is_ok());
    }
}
