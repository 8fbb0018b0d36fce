//! With the `tch` feature, links the `profundo` binary and the tests with an rpath to the
//! LibTorch libraries torch-sys linked against, so nothing has to be exported at run time.
//!
//! The library folder is found the way torch-sys finds it: `LIBTORCH_LIB` or `LIBTORCH`
//! (`<dir>/lib`), else with `LIBTORCH_USE_PYTORCH` set, the `torch` package of the active
//! Python (`python` inside a virtual environment, `python3` otherwise).

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_TCH").is_none() {
        return;
    }
    for var in [
        "LIBTORCH",
        "LIBTORCH_LIB",
        "LIBTORCH_USE_PYTORCH",
        "VIRTUAL_ENV",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    match libtorch_lib_dir() {
        Some(dir) => println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir.display()),
        None => println!(
            "cargo:warning=no LibTorch folder found for the rpath: set LIBTORCH_USE_PYTORCH=1 \
             in the torch virtual environment (scripts/with-torch.sh does), or LD_LIBRARY_PATH \
             at run time"
        ),
    }
}

fn libtorch_lib_dir() -> Option<PathBuf> {
    if let Some(lib) = std::env::var_os("LIBTORCH_LIB") {
        return Some(PathBuf::from(lib).join("lib"));
    }
    if let Some(root) = std::env::var_os("LIBTORCH") {
        return Some(PathBuf::from(root).join("lib"));
    }
    std::env::var_os("LIBTORCH_USE_PYTORCH")?;
    let python = if std::env::var_os("VIRTUAL_ENV").is_some() {
        "python"
    } else {
        "python3"
    };
    let out = Command::new(python)
        .args([
            "-c",
            "import os, torch; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))",
        ])
        .output()
        .ok()?;
    let dir = String::from_utf8(out.stdout).ok()?;
    let dir = PathBuf::from(dir.trim());
    dir.is_dir().then_some(dir)
}
