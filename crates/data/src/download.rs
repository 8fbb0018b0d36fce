//! HTTP(S) downloads with a progress bar, checked against the announced length.

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use crate::error::{DataError, Result};

/// Downloads `url` into the file `dest` and returns the number of bytes written. A status
/// other than 2xx, a connection that fails or closes early, or a body shorter or longer than
/// its `Content-Length` is an error naming the URL; `dest` may then hold a partial file,
/// which the caller discards.
pub fn download(url: &str, dest: &Path, progress: bool) -> Result<u64> {
    let fail = |message: String| DataError::Download {
        url: url.to_string(),
        message,
    };
    let config = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .timeout_per_read(Some(Duration::from_secs(60)))
        .build();
    let agent = ureq::Agent::new_with_config(config);
    let response = agent.get(url).call().map_err(|e| match e {
        ureq::Error::StatusCode(code) => fail(format!("the server answered HTTP {code}{}", {
            match code {
                404 => " (not found)",
                403 => " (forbidden)",
                _ => "",
            }
        })),
        other => fail(format!("request failed: {other}")),
    })?;
    let expected: Option<u64> = response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    let bar = if progress {
        let bar = match expected {
            Some(n) => indicatif::ProgressBar::new(n),
            None => indicatif::ProgressBar::no_length(),
        };
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(short_name(url));
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut body = response.into_body().into_reader();
    let mut out = std::fs::File::create(dest).map_err(|e| DataError::io(dest, e))?;
    let mut buf = vec![0u8; 1 << 16];
    let mut got = 0u64;
    let of = |got: u64| match expected {
        Some(n) => format!("after {got} of {n} bytes"),
        None => format!("after {got} bytes"),
    };
    loop {
        let n = match body.read(&mut buf) {
            Ok(n) => n,
            Err(e) => {
                bar.abandon();
                return Err(fail(format!("the transfer broke off {}: {e}", of(got))));
            }
        };
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])
            .map_err(|e| DataError::io(dest, e))?;
        got += n as u64;
        bar.set_position(got);
    }
    bar.finish_and_clear();
    if let Some(n) = expected
        && n != got
    {
        return Err(fail(format!(
            "the body ended {}: truncated download",
            of(got)
        )));
    }
    out.sync_all().map_err(|e| DataError::io(dest, e))?;
    Ok(got)
}

/// The last path segment of a URL, for the progress bar.
fn short_name(url: &str) -> String {
    url.rsplit('/')
        .find(|s| !s.is_empty())
        .unwrap_or(url)
        .to_string()
}
