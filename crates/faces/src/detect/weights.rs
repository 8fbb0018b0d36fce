//! MTCNN's pretrained weights: facenet-pytorch 2.6.0's `pnet.pt`, `rnet.pt` and `onet.pt`
//! (MIT; `crates/faces/weights/mtcnn/`), compiled into the binary and loaded with
//! burn-store's `PytorchStore`.
//!
//! The files are PyTorch's legacy (pre-1.6) format, which the reader opens only from a file:
//! the first load writes each one, unchanged, into a folder of the system's temporary
//! directory named after the weights' version (one rename, so a concurrent load never sees
//! half a file) and reuses it while its bytes are the shipped ones.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::store::{ModuleSnapshot, PytorchStore};
use burn::tensor::Device;

use super::nets::{ONet, PNet, RNet};
use crate::{FacesError, Result};

/// One shipped weights file.
pub(crate) struct WeightsFile {
    /// File name (`pnet.pt`).
    pub name: &'static str,
    /// Its bytes.
    pub bytes: &'static [u8],
}

/// P-Net's weights.
pub(crate) const PNET: WeightsFile = WeightsFile {
    name: "pnet.pt",
    bytes: include_bytes!("../../weights/mtcnn/pnet.pt"),
};
/// R-Net's weights.
pub(crate) const RNET: WeightsFile = WeightsFile {
    name: "rnet.pt",
    bytes: include_bytes!("../../weights/mtcnn/rnet.pt"),
};
/// O-Net's weights.
pub(crate) const ONET: WeightsFile = WeightsFile {
    name: "onet.pt",
    bytes: include_bytes!("../../weights/mtcnn/onet.pt"),
};

/// The three networks with the shipped weights, on `device`.
pub fn load(device: &Device) -> Result<(PNet, RNet, ONet)> {
    Ok((
        load_one(&PNET, PNet::new(device))?,
        load_one(&RNET, RNet::new(device))?,
        load_one(&ONET, ONet::new(device))?,
    ))
}

fn load_one<M: Module>(file: &WeightsFile, mut net: M) -> Result<M> {
    let path = materialise(file)?;
    let failed = |message: String| {
        FacesError::Config(format!(
            "MTCNN weights {}: {message} (the shipped file is crates/faces/weights/mtcnn/{})",
            path.display(),
            file.name
        ))
    };
    // PyTorch's PReLU keeps its slopes in `weight`, Burn's in `alpha`.
    let mut store =
        PytorchStore::from_file(&path).with_key_remapping(r"^(prelu\d+)\.weight$", "$1.alpha");
    let applied = net
        .load_from(&mut store)
        .map_err(|e| failed(e.to_string()))?;
    if !applied.is_success() || !applied.missing.is_empty() {
        return Err(failed(format!("does not match the network: {applied:?}")));
    }
    Ok(net.no_grad())
}

/// The path of `file` on disk, written there first if it is not already (byte for byte).
fn materialise(file: &WeightsFile) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "profundo-mtcnn-{}",
        &blake3::hash(file.bytes).to_hex()[..16]
    ));
    let path = dir.join(file.name);
    if std::fs::read(&path).is_ok_and(|b| b == file.bytes) {
        return Ok(path);
    }
    let io = |p: &Path, e: std::io::Error| FacesError::Core(profundo_core::CoreError::io(p, e));
    std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
    let tmp = dir.join(format!("{}.{}.tmp", file.name, std::process::id()));
    std::fs::write(&tmp, file.bytes).map_err(|e| io(&tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| io(&path, e))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn shipped_weights_have_the_recorded_sha256() {
        let sums = include_str!("../../weights/mtcnn/SHA256SUMS");
        for file in [PNET, RNET, ONET] {
            let line = sums
                .lines()
                .find(|l| l.ends_with(file.name))
                .unwrap_or_else(|| panic!("{} is not in SHA256SUMS", file.name));
            let digest = Sha256::digest(file.bytes);
            let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(
                line.split_whitespace().next(),
                Some(hex.as_str()),
                "{}",
                file.name
            );
        }
    }

    #[test]
    fn the_three_networks_load_every_tensor() {
        // `load` fails unless every parameter of each network was found in its file.
        load(&Device::flex()).expect("shipped weights load");
    }
}
