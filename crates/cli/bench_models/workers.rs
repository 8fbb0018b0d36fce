//! The worker processes of `bench models`: the line protocol, starting and talking to a worker (profundo or PyTorch), the worker side, CPU pinning and the Python interpreter.

use super::*;

/// A request to a worker, one JSON object per line on its standard input.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub(super) enum Request {
    /// Time `calls` calls of `measure` (each waited on until the device finished).
    Time { measure: String, calls: usize },
    /// Report peak memory and exit.
    Quit,
}

/// A worker's answer, one JSON object per line on its standard output.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub(super) enum Reply {
    /// The model is built; these measures can be timed.
    Ready { measures: Vec<MeasureInfo> },
    /// Call times in ms, in call order.
    Times { ms: Vec<f64> },
    /// The worker's last words before it exits.
    Done {
        /// Peak resident memory of the process, MiB.
        peak_mib: Option<f64>,
        /// Peak GPU memory reserved by PyTorch's allocator, MiB (PyTorch on CUDA only;
        /// tch does not expose LibTorch's allocator statistics).
        #[serde(default)]
        gpu_peak_mib: Option<f64>,
        /// The accelerator's name as PyTorch reports it (CUDA only).
        #[serde(default)]
        device_name: Option<String>,
        /// CPUs the worker was pinned to (`None`: not pinned).
        #[serde(default)]
        pinned: Option<Vec<usize>>,
    },
}

/// A running worker process and the pipe to it.
pub(super) struct WorkerProc {
    label: String,
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    measures: Vec<MeasureInfo>,
}

impl WorkerProc {
    /// This binary as a worker for `w` on backend `b`.
    pub(super) fn profundo(
        w: Workload,
        b: BackendKind,
        threads: usize,
        a: &BenchModelsArgs,
    ) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("cannot find this program to start a worker")?;
        let mut cmd = Command::new(exe);
        cmd.args(["bench", "models", "--worker", w.name(), "--backends"])
            .arg(b.to_string())
            .args(["--threads", &threads.to_string(), "--device", &a.device]);
        Self::start(format!("the {} worker on {b}", w.name()), cmd)
    }

    /// The PyTorch twin of `w`.
    pub(super) fn pytorch(
        python: &Path,
        w: Workload,
        threads: usize,
        a: &BenchModelsArgs,
    ) -> anyhow::Result<Self> {
        let mut cmd = Command::new(python);
        cmd.args(["-c", PYTORCH_SCRIPT, "--model", w.name()]).args([
            "--threads",
            &threads.to_string(),
            "--device",
            &a.device,
        ]);
        Self::start(format!("the PyTorch {} worker", w.name()), cmd)
    }

    fn start(label: String, mut cmd: Command) -> anyhow::Result<Self> {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {label}"))?;
        let stdin = child.stdin.take().context("no pipe to the worker")?;
        let stdout = BufReader::new(child.stdout.take().context("no pipe from the worker")?);
        let mut w = Self {
            label,
            child,
            stdin,
            stdout,
            measures: Vec::new(),
        };
        match w.read()? {
            Reply::Ready { measures } => w.measures = measures,
            other => bail!("{}: expected `ready`, got {other:?}", w.label),
        }
        Ok(w)
    }

    fn read(&mut self) -> anyhow::Result<Reply> {
        let mut line = String::new();
        let n = self
            .stdout
            .read_line(&mut line)
            .with_context(|| format!("reading from {}", self.label))?;
        if n == 0 {
            bail!(self.stopped());
        }
        serde_json::from_str(&line)
            .with_context(|| format!("{}: unreadable reply `{}`", self.label, line.trim()))
    }

    fn send(&mut self, r: &Request) -> anyhow::Result<()> {
        let mut text = serde_json::to_string(r)?;
        text.push('\n');
        if self
            .stdin
            .write_all(text.as_bytes())
            .and_then(|()| self.stdin.flush())
            .is_err()
        {
            bail!(self.stopped());
        }
        Ok(())
    }

    /// Why the worker no longer answers: it exited (with this status).
    fn stopped(&mut self) -> String {
        let status = self
            .child
            .wait()
            .map_or("no exit status".to_string(), |s| s.to_string());
        format!("{} stopped answering ({status})", self.label)
    }

    /// Times `calls` calls of `measure`; ms in call order.
    pub(super) fn time(&mut self, measure: &str, calls: usize) -> anyhow::Result<Vec<f64>> {
        self.send(&Request::Time {
            measure: measure.into(),
            calls,
        })?;
        match self.read()? {
            Reply::Times { ms } if ms.len() == calls => Ok(ms),
            other => bail!("{}: expected {calls} times, got {other:?}", self.label),
        }
    }

    /// Items per call of `measure`.
    pub(super) fn batch(&self, measure: &str) -> usize {
        self.measures
            .iter()
            .find(|m| m.measure == measure)
            .map_or(0, |m| m.batch)
    }

    /// Asks for the worker's peak memory and waits for it to exit.
    pub(super) fn finish(mut self) -> anyhow::Result<Reply> {
        self.send(&Request::Quit)?;
        let done = self.read()?;
        let _ = self.child.wait();
        Ok(done)
    }
}

/// Runs in the child process: builds one workload on one backend, then answers timing
/// requests on standard input until `quit`.
pub(super) fn worker(name: &str, a: &BenchModelsArgs) -> anyhow::Result<()> {
    let w = Workload::parse(name).with_context(|| format!("unknown model `{name}`"))?;
    let threads = a.threads.unwrap_or_else(rayon_threads);
    // Before any thread exists, so that rayon's and LibTorch's threads inherit it.
    let pinned = pin_to_first_cpus(threads);
    let kind = a.backends.first().copied().unwrap_or_default();
    // The same thread count as flex's rayon pool and the PyTorch script.
    backend::set_libtorch_threads(threads);
    let device = backend::device(kind, &a.device)?;
    let mut prepared = workloads::prepare(w, &device);
    let mut out = std::io::stdout().lock();
    let mut reply = |r: &Reply| -> anyhow::Result<()> {
        writeln!(out, "{}", serde_json::to_string(r)?)?;
        out.flush()?;
        Ok(())
    };
    reply(&Reply::Ready {
        measures: prepared
            .iter()
            .map(|p| MeasureInfo {
                measure: p.measure.name().into(),
                batch: p.items,
            })
            .collect(),
    })?;
    for line in std::io::stdin().lock().lines() {
        let line = line.context("reading a request")?;
        match serde_json::from_str::<Request>(&line)
            .with_context(|| format!("unreadable request `{line}`"))?
        {
            Request::Time { measure, calls } => {
                let p = prepared
                    .iter_mut()
                    .find(|p| p.measure.name() == measure)
                    .with_context(|| format!("unknown measure `{measure}`"))?;
                reply(&Reply::Times { ms: p.time(calls) })?;
            }
            Request::Quit => break,
        }
    }
    reply(&Reply::Done {
        peak_mib: peak_rss_mib(),
        gpu_peak_mib: None,
        device_name: None,
        pinned,
    })
}

/// Pins this process to CPUs 0..n (the same set the PyTorch worker pins to), where the OS
/// allows and those CPUs are available; the CPUs pinned to, or `None`.
pub(super) fn pin_to_first_cpus(n: usize) -> Option<Vec<usize>> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET and sched_setaffinity only
        // read and write that local set and this process's affinity.
        unsafe {
            let mut current: libc::cpu_set_t = std::mem::zeroed();
            if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut current) != 0
            {
                return None;
            }
            let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
                .filter(|&c| libc::CPU_ISSET(c, &current))
                .take(n)
                .collect();
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            for &c in &cpus {
                libc::CPU_SET(c, &mut set);
            }
            (cpus.len() == n
                && libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0)
                .then_some(cpus)
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = n;
        None
    }
}

/// `--python`, else `$PROFUNDO_PYTHON`, else the virtual environment that
/// `scripts/setup-torch.sh` creates, else `python3`.
pub(super) fn python_path(a: &BenchModelsArgs) -> PathBuf {
    if let Some(p) = &a.python {
        return p.clone();
    }
    if let Some(p) = std::env::var_os("PROFUNDO_PYTHON") {
        return p.into();
    }
    if let Some(home) = std::env::var_os("HOME") {
        let venv = PathBuf::from(home).join(".cache/profundo/torch-venv/bin/python");
        if venv.exists() {
            return venv;
        }
    }
    "python3".into()
}

/// PyTorch's version, or why it cannot be used.
pub(super) fn torch_version(python: &Path) -> Result<String, String> {
    let out = Command::new(python)
        .args(["-c", "import torch; print(torch.__version__)"])
        .output()
        .map_err(|e| format!("{} cannot be started: {e}", python.display()))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or("").trim();
        Err(format!(
            "not available from {} ({last}); scripts/setup-torch.sh installs it",
            python.display()
        ))
    }
}
