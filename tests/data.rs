//! A fresh clone: data-dependent tests skip without their data (and fail when it is
//! required), `profundo data list | verify | fetch` on real files and a local HTTP server.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::*;

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}"))
}

/// Runs this test binary's data-dependent tests (names starting with [`NEEDS_DATA`]) with
/// an empty data folder.
fn run_data_tests(empty: &Path, require: bool) -> (bool, String) {
    let mut c = Command::new(std::env::current_exe().expect("test binary"));
    c.arg(NEEDS_DATA)
        .env("PROFUNDO_DATA", empty)
        .env_remove("PROFUNDO_REQUIRE_DATA");
    if require {
        c.env("PROFUNDO_REQUIRE_DATA", "1");
    }
    let out = c.output().expect("run the test binary");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn tests_of_absent_datasets_skip_on_a_fresh_clone_and_fail_when_data_is_required() {
    let empty = tempfile::tempdir().unwrap();
    let (ok, text) = run_data_tests(empty.path(), false);
    assert!(
        ok,
        "without their data the tests must skip, not fail:\n{text}"
    );
    let ran: usize = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("running ")?
                .strip_suffix(" tests")?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no `running N tests` line:\n{text}"));
    let skips: Vec<&str> = text.lines().filter(|l| l.starts_with("SKIPPED ")).collect();
    assert!(
        ran >= 3,
        "expected the ORL and MovieLens tests, ran {ran}:\n{text}"
    );
    assert_eq!(
        skips.len(),
        ran,
        "every data-dependent test prints one SKIPPED line:\n{text}"
    );
    for name in ["orl", "ml-100k"] {
        assert!(
            skips
                .iter()
                .any(|l| l.contains(&format!("dataset `{name}`"))
                    && l.contains(&format!("profundo data fetch {name}"))
                    && l.contains(&empty.path().display().to_string())),
            "no skip line for `{name}` naming where it looked and how to get it:\n{text}"
        );
    }

    let (ok, text) = run_data_tests(empty.path(), true);
    assert!(
        !ok,
        "PROFUNDO_REQUIRE_DATA=1 must turn a missing dataset into a failure:\n{text}"
    );
    for name in ["orl", "ml-100k"] {
        assert!(
            text.contains(&format!("dataset `{name}`")),
            "the failure names `{name}`:\n{text}"
        );
    }
    assert!(!text.contains("SKIPPED "), "{text}");
}

#[test]
fn data_list_covers_every_shipped_pipeline_and_says_what_is_present() {
    let empty = tempfile::tempdir().unwrap();
    let out = profundo_with_data(&repo(), &["data", "list", "--json"], empty.path());
    assert!(out.ok, "{}", out.all());
    let rows = json(&out.stdout);
    let rows = rows.as_array().expect("rows");
    let row = |n: &str| {
        rows.iter()
            .find(|r| r["name"] == n)
            .unwrap_or_else(|| panic!("no row {n}"))
    };
    for shipped in ["fsdd", "movietweetings-10k", "tatoeba-spa-eng"] {
        let r = row(shipped);
        assert_eq!(r["shipped"], true);
        assert_eq!(r["present"], true, "{r}");
        assert_eq!(
            r["verified"], true,
            "{shipped}: shipped files differ from the manifest"
        );
    }
    for absent in ["orl", "ml-100k"] {
        let r = row(absent);
        assert_eq!(
            (r["shipped"].clone(), r["present"].clone()),
            (false.into(), false.into())
        );
        assert!(r["verified"].is_null());
        assert!(r["licence"].as_str().is_some_and(|l| !l.is_empty()));
        assert!(
            r["path"]
                .as_str()
                .is_some_and(|p| p.starts_with(&empty.path().display().to_string())),
            "{r}"
        );
    }
    // Every shipped pipeline that reads a dataset is in the catalogue.
    let listed: Vec<String> = rows
        .iter()
        .flat_map(|r| r["pipelines"].as_array().cloned().unwrap_or_default())
        .filter_map(|p| p.as_str().map(str::to_string))
        .collect();
    for entry in std::fs::read_dir(repo().join("pipelines")).unwrap() {
        let path = entry.unwrap().path();
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        assert!(
            listed.contains(&stem),
            "pipelines/{stem}.toml reads no catalogued dataset"
        );
    }

    let table = profundo_with_data(&repo(), &["data", "list"], empty.path());
    assert!(table.ok);
    assert!(
        table.stdout.contains("not present: orl, ml-100k"),
        "{}",
        table.stdout
    );
}

#[test]
fn data_verify_names_a_changed_or_truncated_file_and_fetch_refuses_bad_requests() {
    let data = tempfile::tempdir().unwrap();
    let ml = data.path().join("recommend/ml-100k");
    std::fs::create_dir_all(&ml).unwrap();
    std::fs::write(ml.join("u.data"), "196\t242\t3\n").unwrap();
    let out = profundo_with_data(&repo(), &["data", "verify", "ml-100k"], data.path());
    assert!(!out.ok);
    assert!(
        out.stderr
            .contains("1 file(s) differ from their checksum (changed or truncated): u.data")
            && out.stderr.contains("22 file(s) missing"),
        "{}",
        out.stderr
    );
    // All present datasets: the shipped ones pass, the damaged one fails, the absent is named.
    let out = profundo_with_data(&repo(), &["data", "verify"], data.path());
    assert!(!out.ok);
    assert!(
        out.stdout.contains("fsdd") && out.stdout.contains("ok: 2503 files"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("orl") && out.stdout.contains("absent"),
        "{}",
        out.stdout
    );
    assert!(out.stderr.contains("ml-100k"), "{}", out.stderr);

    let out = profundo_with_data(&repo(), &["data", "verify", "movielens"], data.path());
    assert!(
        !out.ok && out.stderr.contains("unknown dataset `movielens`"),
        "{}",
        out.stderr
    );
    let out = profundo_with_data(&repo(), &["data", "fetch", "fsdd"], data.path());
    assert!(
        !out.ok && out.stderr.contains("ships with the repository"),
        "{}",
        out.stderr
    );
    let out = profundo_with_data(
        &repo(),
        &["data", "fetch", "orl", "--from", "/no/such/att_faces.zip"],
        data.path(),
    );
    assert!(
        !out.ok && out.stderr.contains("/no/such/att_faces.zip: no such file"),
        "{}",
        out.stderr
    );
    assert!(!data.path().join("faces/orl").exists());
}

/// Serves `body` once on 127.0.0.1 and returns its URL.
fn serve_once(body: Vec<u8>) -> (String, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/ml-100k.zip", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        if let Some(Ok(mut stream)) = listener.incoming().next() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                line.clear();
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    (url, handle)
}

/// A zip of every file under `dir`, inside a top folder `top/` (as GroupLens packs it).
fn zip_dir(dir: &Path, top: &str) -> Vec<u8> {
    let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        z.start_file(format!("{top}/{name}"), opts).unwrap();
        z.write_all(&std::fs::read(&f).unwrap()).unwrap();
    }
    z.finish().unwrap().into_inner()
}

#[test]
fn needs_data_fetch_from_a_local_server_and_a_folder_places_verified_copies() {
    let Some(ml) = dataset("ml-100k") else {
        return;
    };
    let Some(orl) = dataset("orl") else {
        return;
    };
    let Some(dlib) = dataset("dlib-faces") else {
        return;
    };
    let Some(gtsrb) = dataset("gtsrb") else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let (url, server) = serve_once(zip_dir(&ml, "ml-100k"));
    let out = profundo_with_data(
        &repo(),
        &["data", "fetch", "ml-100k", "--from", &url, "--json"],
        data.path(),
    );
    server.join().unwrap();
    assert!(out.ok, "{}", out.all());
    let report = json(&out.stdout);
    assert_eq!(report["files"], 23);
    assert_eq!(report["already_present"], false);
    let again = profundo_with_data(&repo(), &["data", "fetch", "ml-100k"], data.path());
    assert!(
        again.ok && again.stdout.contains("already at"),
        "{}",
        again.all()
    );

    for (name, folder) in [("orl", &orl), ("dlib-faces", &dlib), ("gtsrb", &gtsrb)] {
        let out = profundo_with_data(
            &repo(),
            &["data", "fetch", name, "--from", folder.to_str().unwrap()],
            data.path(),
        );
        assert!(out.ok, "{}", out.all());
    }
    let out = profundo_with_data(&repo(), &["data", "verify"], data.path());
    assert!(out.ok, "{}", out.all());
    let rows = json(&profundo_with_data(&repo(), &["data", "list", "--json"], data.path()).stdout);
    for r in rows.as_array().unwrap() {
        assert_eq!(r["verified"], true, "{r}");
    }
}

/// A tiny speech pipeline (two speakers, two takes) in `dir`, named `name`.
fn tiny_run(dir: &Path, name: &str) -> PathBuf {
    let wav = tiny_fsdd(dir, &["theo", "jackson"], 2);
    write(dir, "p.toml", &tiny_pipeline(name, &wav, 2))
}

#[test]
fn a_second_run_of_a_locked_pipeline_waits_or_with_no_wait_fails_naming_the_holder() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let p = tiny_run(dir, "locked");
    let p = p.to_str().unwrap();
    // This process plays the first run: it holds the pipeline's lock.
    let lock_path = dir.join("runs/locked/.lock");
    std::fs::create_dir_all(lock_path.parent().unwrap()).unwrap();
    let mut lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&lock_path)
        .unwrap();
    lock.lock().unwrap();
    writeln!(lock, "pid {}", std::process::id()).unwrap();
    let holder = format!("pid {}", std::process::id());

    fails_with(
        dir,
        &["run", p, "--runs-dir", "runs", "--no-wait"],
        &["another run of this pipeline holds the lock", &holder],
    );

    let mut waiting = command(dir, &["run", p, "--runs-dir", "runs"], &data_dir())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = waiting.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("waiting for the lock held by") {
                tx.send(line.clone()).ok();
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let line = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the second run says it waits");
    assert!(line.contains(&holder), "{line}");
    assert!(
        !dir.join("runs/locked/latest").exists(),
        "nothing runs while the lock is held"
    );
    drop(lock);
    let status = waiting.wait().unwrap();
    let log = reader.join().unwrap();
    assert!(status.success(), "{log}");
    assert!(dir.join("runs/locked/latest/metrics.json").is_file());
}

#[test]
fn two_runs_of_one_pipeline_at_once_both_finish_and_share_one_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let p = tiny_run(dir, "twice");
    let p = p.to_str().unwrap();
    let spawn = || {
        command(dir, &["run", p, "--runs-dir", "runs"], &data_dir())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a_out, b_out) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let text = |o: &std::process::Output| {
        format!(
            "{}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    assert!(a_out.status.success(), "{}", text(&a_out));
    assert!(b_out.status.success(), "{}", text(&b_out));
    let runs: Vec<PathBuf> = std::fs::read_dir(dir.join("runs/twice"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("metrics.json").is_file() && !p.ends_with("latest"))
        .collect();
    assert_eq!(runs.len(), 2, "two complete run directories");
    // Whichever started second (waiting for the lock or not, depending on timing), no stage
    // was computed twice: the second found the first one's outputs in the cache.
    let (oa, ob) = (stage_outcomes(&runs[0]), stage_outcomes(&runs[1]));
    for ((stage, a), (_, b)) in oa.iter().zip(&ob) {
        assert!(
            !(a == "ran" && b == "ran"),
            "stage `{stage}` was computed by both runs:\n{}\n---\n{}",
            text(&a_out),
            text(&b_out)
        );
    }
    assert!(
        oa.iter().chain(&ob).any(|(_, o)| o == "ran"),
        "one of the runs computed the stages"
    );
    let m: Vec<String> = runs
        .iter()
        .map(|r| std::fs::read_to_string(r.join("metrics.json")).unwrap())
        .collect();
    assert_eq!(m[0], m[1], "the same metrics from the shared cache");
    let leftovers: Vec<String> = std::fs::read_dir(dir.join("runs/twice/cache"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tmp-") || n.ends_with(".work"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "half-written cache entries: {leftovers:?}"
    );
}
