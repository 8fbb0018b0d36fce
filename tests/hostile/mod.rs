//! The hostile-input corpus: files users could bring that are broken, lying, huge or merely
//! unusual, each made by the generators in this folder, fed to the real binary, and held to
//! the contract: a refusal exits non-zero with a message naming the file and the problem,
//! an unusual but valid input works, nothing panics or dies by a signal, every case ends
//! within [`SECONDS`] and stays under [`PEAK_MB`] of memory (a decompression bomb must be
//! refused before it allocates). A summary table goes to standard error.

mod audio;
mod images;
mod pipelines;
mod runs;
mod tables;
mod text;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::util::{command, data_dir};

/// Each case must finish within this many seconds (debug build, loaded machine).
const SECONDS: f64 = 60.0;
/// Each case's peak resident memory must stay under this many MB.
const PEAK_MB: f64 = 1024.0;

/// What a case must do.
#[derive(Debug, Clone)]
pub enum Expect {
    /// Exit non-zero; standard error contains every needle.
    Refused(Vec<String>),
    /// Exit 0; standard output and error together contain every needle.
    Works(Vec<String>),
}

/// One hostile input and the command that is given it.
#[derive(Debug, Clone)]
pub struct Case {
    /// `domain/what`, e.g. `audio/truncated-header`.
    pub name: String,
    /// Arguments of `profundo`.
    pub args: Vec<String>,
    /// The contract.
    pub expect: Expect,
}

fn strings<S: AsRef<str>>(v: &[S]) -> Vec<String> {
    v.iter().map(|s| s.as_ref().to_string()).collect()
}

/// Writes `bytes` to `f.dir/<sub>/<name>` and returns the path.
pub fn put(f: &Fixture, sub: &str, name: &str, bytes: &[u8]) -> String {
    let folder = f.dir.join(sub);
    std::fs::create_dir_all(&folder).unwrap();
    let path = folder.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_str().unwrap().to_string()
}

impl Case {
    /// A case that must be refused with every one of `needles` in the message.
    pub fn refused<S: AsRef<str>>(name: &str, args: &[S], needles: &[&str]) -> Case {
        Case {
            name: name.into(),
            args: strings(args),
            expect: Expect::Refused(strings(needles)),
        }
    }

    /// A case that must work, with every one of `needles` in the output.
    pub fn works<S: AsRef<str>>(name: &str, args: &[S], needles: &[&str]) -> Case {
        Case {
            name: name.into(),
            args: strings(args),
            expect: Expect::Works(strings(needles)),
        }
    }
}

/// The trained models the cases run against, and a folder for their files.
pub struct Fixture {
    /// Where the generators write their files.
    pub dir: PathBuf,
    pub speech: String,
    pub faces: String,
    pub gallery: String,
    pub translate: String,
    pub recommend: String,
    pub signs: String,
}

/// How one case went.
struct Outcome {
    code: Option<i32>,
    signal: Option<i32>,
    stdout: String,
    stderr: String,
    seconds: f64,
    peak_mb: f64,
}

/// The process's peak resident memory so far in MB (`VmHWM` in `/proc/<pid>/status`).
fn high_water_mb(pid: libc::pid_t) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Runs `profundo args...` in `cwd`, measuring its wall time and peak resident memory; a
/// run past twice [`SECONDS`] is killed. The peak is the larger of the child's own high
/// water mark, polled every 5 ms, and, when it exceeds the test process's size at the
/// spawn, `wait4`'s `ru_maxrss` (which counts the test process's pages the child started
/// with, so below that size it says nothing about the child).
fn run(cwd: &Path, args: &[String]) -> Outcome {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let start = Instant::now();
    #[expect(
        clippy::zombie_processes,
        reason = "reaped by wait4 below, which also reports its resource use"
    )]
    let mut child = command(cwd, &args, &data_dir())
        .env("PROFUNDO_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("profundo starts");
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut b = Vec::new();
            let _ = r.read_to_end(&mut b);
            String::from_utf8_lossy(&b).into_owned()
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let pid = child.id() as libc::pid_t;
    let parent_mb = high_water_mb(std::process::id() as libc::pid_t).unwrap_or(0.0);
    let mut polled_mb = 0.0f64;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `pid` is our child, not yet reaped; status and usage are valid pointers.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        assert!(r >= 0, "wait4 failed: {}", std::io::Error::last_os_error());
        if r == pid {
            break;
        }
        if let Some(mb) = high_water_mb(pid) {
            polled_mb = polled_mb.max(mb);
        }
        if start.elapsed() > Duration::from_secs_f64(2.0 * SECONDS) {
            let _ = child.kill();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let exited = libc::WIFEXITED(status);
    Outcome {
        code: exited.then(|| libc::WEXITSTATUS(status)),
        signal: libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status)),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
        seconds: start.elapsed().as_secs_f64(),
        peak_mb: {
            let maxrss = usage.ru_maxrss as f64 / 1024.0;
            if maxrss > parent_mb {
                maxrss.max(polled_mb)
            } else {
                polled_mb
            }
        },
    }
}

/// Why `o` breaks `case`'s contract, if it does.
fn broken(case: &Case, o: &Outcome) -> Option<String> {
    if o.stderr.contains("panicked") {
        return Some("panicked".into());
    }
    if let Some(s) = o.signal {
        return Some(format!("killed by signal {s}"));
    }
    if o.seconds > SECONDS {
        return Some(format!("took {:.1} s (limit {SECONDS} s)", o.seconds));
    }
    if o.peak_mb > PEAK_MB {
        return Some(format!(
            "peak memory {:.0} MB (limit {PEAK_MB} MB)",
            o.peak_mb
        ));
    }
    let missing = |needles: &[String], text: &str| {
        needles
            .iter()
            .filter(|n| !text.contains(n.as_str()))
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
    };
    match &case.expect {
        Expect::Refused(needles) => {
            if o.code == Some(0) {
                return Some("succeeded; it must be refused".into());
            }
            let m = missing(needles, &o.stderr);
            (!m.is_empty()).then(|| format!("message lacks {}", m.join(", ")))
        }
        Expect::Works(needles) => {
            if o.code != Some(0) {
                return Some(format!("failed with exit code {:?}; it must work", o.code));
            }
            let m = missing(needles, &format!("{}\n{}", o.stdout, o.stderr));
            (!m.is_empty()).then(|| format!("output lacks {}", m.join(", ")))
        }
    }
}

/// Every case of the corpus, generated into `f.dir`.
fn corpus(f: &Fixture) -> Vec<Case> {
    let mut cases = Vec::new();
    cases.extend(audio::cases(f));
    cases.extend(images::cases(f));
    cases.extend(text::cases(f));
    cases.extend(tables::cases(f));
    cases.extend(pipelines::cases(f));
    cases.extend(runs::cases(f));
    cases
}

/// The models of the serve tests, plus a tiny sign model, with a fresh folder for files.
fn fixture(tmp: &Path) -> Fixture {
    let m = crate::serve::models();
    let signs = crate::perception::tiny_sign_model(&tmp.join("signs"));
    let dir = tmp.join("corpus");
    std::fs::create_dir_all(&dir).unwrap();
    Fixture {
        dir,
        speech: m.speech.clone(),
        faces: m.faces.clone(),
        gallery: m.gallery.clone(),
        translate: m.translate.clone(),
        recommend: m.recommend.clone(),
        signs: signs.to_str().unwrap().to_string(),
    }
}

#[test]
fn hostile_inputs_are_refused_cleanly_or_work() {
    let tmp = tempfile::tempdir().unwrap();
    let f = fixture(tmp.path());
    let cases = corpus(&f);
    assert!(cases.len() >= 60, "the corpus has {} cases", cases.len());

    // Two cases at a time (the CI machine has two cores).
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Some(case) = cases.get(i) else { break };
                    let o = run(&f.dir, &case.args);
                    results.lock().unwrap().push((i, o));
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|(i, _)| *i);

    let mut table = String::from("\nhostile inputs\n");
    let (mut refused, mut worked, mut panics, mut failures) = (0, 0, 0, Vec::new());
    let (mut slowest, mut biggest) = (0.0f64, 0.0f64);
    for (i, o) in &results {
        let case = &cases[*i];
        slowest = slowest.max(o.seconds);
        biggest = biggest.max(o.peak_mb);
        panics += usize::from(o.stderr.contains("panicked") || o.signal.is_some());
        let verdict = match broken(case, o) {
            Some(why) => {
                failures.push(format!(
                    "{}: {why}\n  profundo {}\n  stdout: {}\n  stderr: {}",
                    case.name,
                    case.args.join(" "),
                    o.stdout.trim(),
                    o.stderr.trim()
                ));
                format!("FAIL ({why})")
            }
            None if o.code == Some(0) => {
                worked += 1;
                "worked".into()
            }
            None => {
                refused += 1;
                "refused".into()
            }
        };
        table.push_str(&format!(
            "  {:<40} {:>6.2} s {:>6.0} MB  {verdict}\n",
            case.name, o.seconds, o.peak_mb
        ));
    }
    table.push_str(&format!(
        "{} cases, {refused} refused cleanly, {worked} worked, {panics} panics \
         (slowest {slowest:.1} s, most memory {biggest:.0} MB)\n",
        cases.len()
    ));
    let _ = std::io::stderr().write_all(table.as_bytes());
    for p in pipelines::escapes(&f) {
        assert!(
            !p.exists(),
            "a pipeline wrote outside its runs folder: {}",
            p.display()
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {} hostile cases broke the contract:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
