//! `fetch` against a local HTTP server on 127.0.0.1 (no internet here): a good archive, a
//! wrong checksum, a truncated archive, a 404, a server closing mid-transfer; and the local
//! sources (folder, archive). After every failure the data folder holds no dataset and no
//! staging folder.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use profundo_data::catalog::FileSum;
use profundo_data::fetch::{FetchOptions, fetch_files};
use profundo_data::verify::{sha256_reader, verify_files};

/// The dataset the tests fetch: two files, one in a sub-folder.
const FILES: &[(&str, &[u8])] = &[
    ("a.txt", b"alpha\n"),
    ("sub/b.bin", &[0u8, 1, 2, 3, 254, 255]),
];

fn manifest() -> Vec<FileSum> {
    FILES
        .iter()
        .map(|(p, bytes)| FileSum {
            path: p.to_string(),
            sha256: sha256_reader(&mut &bytes[..]).expect("hash").0,
        })
        .collect()
}

/// A zip of `files` under `prefix/`, plus an extra file the manifest does not name.
fn zip_of(prefix: &str, files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut z = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (p, bytes) in files.iter().chain([&("README", &b"upstream notes"[..])]) {
            z.start_file(format!("{prefix}{p}"), opts)
                .expect("zip entry");
            z.write_all(bytes).expect("zip write");
        }
        z.finish().expect("zip finish");
    }
    buf.into_inner()
}

fn tar_gz_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut t = tar::Builder::new(gz);
    for (p, bytes) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        t.append_data(&mut h, format!("dataset-1.0/{p}"), *bytes)
            .expect("tar entry");
    }
    t.into_inner().expect("tar").finish().expect("gzip")
}

/// What the test server answers.
#[derive(Clone)]
enum Reply {
    /// 200 with this body.
    Body(Vec<u8>),
    /// 404.
    NotFound,
    /// 200 announcing the whole body's length, sending only the first `n` bytes, then
    /// closing the connection.
    CloseAfter(Vec<u8>, usize),
}

/// Serves `reply` to at most `requests` connections on 127.0.0.1, then stops.
fn serve(reply: Reply, requests: usize) -> (String, JoinHandle<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let url = format!(
        "http://{}/dataset.zip",
        listener.local_addr().expect("addr")
    );
    let handle = std::thread::spawn(move || {
        let mut served = 0;
        for stream in listener.incoming().take(requests) {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                line.clear();
            }
            let _ = match &reply {
                Reply::Body(b) => stream
                    .write_all(
                        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", b.len())
                            .as_bytes(),
                    )
                    .and_then(|()| stream.write_all(b)),
                Reply::NotFound => stream.write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found",
                ),
                Reply::CloseAfter(b, n) => stream
                    .write_all(
                        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", b.len())
                            .as_bytes(),
                    )
                    .and_then(|()| stream.write_all(&b[..*n])),
            };
            let _ = stream.flush();
            drop(stream);
            served += 1;
        }
        served
    });
    (url, handle)
}

fn opts(from: &str) -> FetchOptions {
    FetchOptions {
        from: Some(from.to_string()),
        ..FetchOptions::default()
    }
}

/// The data folder holds nothing but the fetch lock: no dataset, no staging folder.
fn assert_nothing_left(data: &Path) {
    let left: Vec<String> = std::fs::read_dir(data)
        .expect("data folder")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".fetch.lock"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

fn dest(tmp: &Path) -> PathBuf {
    tmp.join("data").join("toy")
}

/// Serves `reply` once, fetches from it into a fresh data folder, checks that the fetch
/// failed and left nothing behind; returns the error text and the URL.
fn failed_fetch(reply: Reply) -> (String, String) {
    let tmp = tempfile::tempdir().expect("tmp");
    let (url, server) = serve(reply, 1);
    let e = fetch_files(
        "toy",
        &manifest(),
        &dest(tmp.path()),
        &url,
        &FetchOptions::default(),
    )
    .expect_err("the fetch must fail")
    .to_string();
    server.join().expect("server");
    assert_nothing_left(&tmp.path().join("data"));
    (e, url)
}

#[test]
fn a_good_zip_over_http_is_unpacked_checked_and_placed() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (url, server) = serve(Reply::Body(zip_of("toy-v1/", FILES)), 1);
    let r = fetch_files(
        "toy",
        &manifest(),
        &dest(tmp.path()),
        &url,
        &FetchOptions::default(),
    )
    .expect("fetch");
    assert_eq!(server.join().expect("server"), 1);
    assert!(!r.already_present);
    assert_eq!((r.files, r.bytes), (2, 12));
    assert!(
        verify_files("toy", &manifest(), &r.path)
            .expect("verify")
            .ok()
    );
    // Only the manifest's files: the archive's README stays behind.
    assert!(!r.path.join("README").exists());
    let names: Vec<_> = std::fs::read_dir(tmp.path().join("data"))
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.starts_with(".fetch-")), "{names:?}");

    // A second fetch finds the verified copy and does not connect (the server is gone).
    let again = fetch_files("toy", &manifest(), &r.path, &url, &FetchOptions::default())
        .expect("second fetch");
    assert!(again.already_present);
}

#[test]
fn a_tar_gz_file_and_a_folder_are_local_sources() {
    let tmp = tempfile::tempdir().expect("tmp");
    let archive = tmp.path().join("toy.tgz");
    std::fs::write(&archive, tar_gz_of(FILES)).expect("write");
    let r = fetch_files(
        "toy",
        &manifest(),
        &dest(tmp.path()),
        "unused",
        &opts(archive.to_str().expect("utf-8")),
    )
    .expect("tar.gz");
    assert!(
        verify_files("toy", &manifest(), &r.path)
            .expect("verify")
            .ok()
    );

    let folder = tmp.path().join("unpacked");
    for (p, b) in FILES {
        let f = folder.join(p);
        std::fs::create_dir_all(f.parent().expect("parent")).expect("mkdir");
        std::fs::write(f, b).expect("write");
    }
    let other = tmp.path().join("elsewhere").join("toy");
    let r = fetch_files(
        "toy",
        &manifest(),
        &other,
        "unused",
        &opts(folder.to_str().expect("utf-8")),
    )
    .expect("folder");
    assert!(
        verify_files("toy", &manifest(), &r.path)
            .expect("verify")
            .ok()
    );
}

#[test]
fn a_wrong_checksum_names_the_file_and_places_nothing() {
    let tampered = [("a.txt", &b"alpha, edited\n"[..]), FILES[1]];
    let (e, _) = failed_fetch(Reply::Body(zip_of("", &tampered)));
    assert!(
        e.contains("a.txt") && e.contains("differ from their checksum"),
        "{e}"
    );
    assert!(!e.contains("b.bin"), "{e}");
}

#[test]
fn a_truncated_archive_is_refused() {
    let mut zip = zip_of("", FILES);
    zip.truncate(zip.len() / 2);
    let (e, url) = failed_fetch(Reply::Body(zip));
    assert!(e.contains(&url) && e.contains("zip archive"), "{e}");
}

#[test]
fn a_404_is_named_with_its_url() {
    let (e, url) = failed_fetch(Reply::NotFound);
    assert!(e.contains(&url) && e.contains("HTTP 404"), "{e}");
}

#[test]
fn a_server_closing_mid_transfer_is_an_error_not_a_dataset() {
    let zip = zip_of("", FILES);
    let half = zip.len() / 2;
    let (e, url) = failed_fetch(Reply::CloseAfter(zip, half));
    assert!(e.contains(&url), "{e}");
    assert!(
        e.contains("broke off") || e.contains("truncated"),
        "the error should say the transfer ended early: {e}"
    );
}

#[test]
fn a_corrupt_copy_is_replaced_and_stale_staging_removed() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = dest(tmp.path());
    std::fs::create_dir_all(d.join("sub")).expect("mkdir");
    std::fs::write(d.join("a.txt"), b"alp").expect("truncated copy");
    let stale = tmp.path().join("data").join(".fetch-toy-interrupted");
    std::fs::create_dir_all(&stale).expect("stale");
    let before = verify_files("toy", &manifest(), &d).expect("verify");
    assert_eq!(before.changed, vec!["a.txt".to_string()]);
    assert_eq!(before.missing, vec!["sub/b.bin".to_string()]);

    let (url, server) = serve(Reply::Body(zip_of("", FILES)), 1);
    let r = fetch_files("toy", &manifest(), &d, &url, &FetchOptions::default()).expect("fetch");
    server.join().expect("server");
    assert!(!r.already_present);
    assert!(verify_files("toy", &manifest(), &d).expect("verify").ok());
    assert!(
        !stale.exists(),
        "the interrupted fetch's folder is cleaned up"
    );
}

#[test]
fn a_missing_local_source_and_a_non_archive_are_named() {
    let tmp = tempfile::tempdir().expect("tmp");
    let e = fetch_files(
        "toy",
        &manifest(),
        &dest(tmp.path()),
        "unused",
        &opts("/no/such/toy.zip"),
    )
    .expect_err("missing")
    .to_string();
    assert!(
        e.contains("/no/such/toy.zip") && e.contains("no such file"),
        "{e}"
    );
    let text = tmp.path().join("notes.txt");
    std::fs::write(&text, "just text").expect("write");
    let e = fetch_files(
        "toy",
        &manifest(),
        &dest(tmp.path()),
        "unused",
        &opts(text.to_str().expect("utf-8")),
    )
    .expect_err("not an archive")
    .to_string();
    assert!(
        e.contains("notes.txt") && e.contains("not a zip, tar.gz or tar archive"),
        "{e}"
    );
    assert_nothing_left(&tmp.path().join("data"));
}
