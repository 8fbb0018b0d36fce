//! `profundo serve`: the real server on 127.0.0.1, port 0, called with a real HTTP client
//! (ureq). Four small models (speech, faces, translation, recommendations) are trained
//! once for all the tests here; every route's answer is compared with the CLI's.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use base64::Engine;

use crate::util::*;

/// The trained models, in a folder kept for the whole test run.
pub(crate) struct Models {
    _tmp: tempfile::TempDir,
    pub(crate) speech: String,
    pub(crate) faces: String,
    pub(crate) translate: String,
    pub(crate) recommend: String,
    pub(crate) gallery: String,
}

pub(crate) fn models() -> &'static Models {
    static MODELS: OnceLock<Models> = OnceLock::new();
    MODELS.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let s = |p: &Path| p.to_str().unwrap().to_string();

        let wavs = tiny_fsdd(&dir.join("speech"), &["jackson", "theo"], 2);
        let p = write(dir, "speech.toml", &tiny_pipeline("serve-speech", &wavs, 2));
        let speech = run_dir(&ok(dir, &["run", &s(&p)]), dir);

        let root = crate::faces::synthetic_faces(&dir.join("faces"), 4, 6);
        let p = write(dir, "faces.toml", &crate::faces::tiny_faces_pipeline(&root));
        let faces = run_dir(&ok(dir, &["run", &s(&p)]), dir);
        let gallery = dir.join("gallery.json");
        for (name, photo) in [
            ("astronaut", "astronaut.png"),
            ("hopper", "grace_hopper.png"),
        ] {
            let photo = repo().join("datasets/face-photos").join(photo);
            let args = [
                "faces",
                "enroll",
                "--model",
                &s(&faces),
                "--gallery",
                &s(&gallery),
            ];
            let mut args = args.to_vec();
            let photo = s(&photo);
            args.extend(["--name", name, &photo]);
            ok(dir, &args);
        }

        let p = crate::translate::tiny_pipeline(dir, 1_500, 1);
        let translate = run_dir(&ok(dir, &["run", &s(&p)]), dir);

        let recommend = run_shipped_in(
            "pipelines/recommend-movietweetings.toml",
            &[],
            &dir.join("runs"),
        );
        Models {
            speech: s(&speech),
            faces: s(&faces),
            translate: s(&translate),
            recommend: s(&recommend),
            gallery: s(&gallery),
            _tmp: tmp,
        }
    })
}

/// A running `profundo serve`, killed when dropped.
pub(crate) struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `profundo serve` with every model and `extra` flags, and waits until it is ready.
fn start(extra: &[&str]) -> Server {
    let m = models();
    let specs = [
        format!("speech={}", m.speech),
        format!("faces={}", m.faces),
        format!("translate={}", m.translate),
        format!("recommend={}", m.recommend),
    ];
    let gallery = format!("faces={}", m.gallery);
    let mut flags = vec!["--gallery", &gallery];
    flags.extend_from_slice(extra);
    start_with(&specs, &flags)
}

/// Starts `profundo serve` with `--model` for each of `specs` (`NAME=PATH`) and `extra`
/// flags, and waits until it is ready.
pub(crate) fn start_with(specs: &[String], extra: &[&str]) -> Server {
    let mut args = vec!["serve", "--addr", "127.0.0.1:0"];
    for s in specs {
        args.extend(["--model", s]);
    }
    args.extend_from_slice(extra);
    let mut child = command(&repo(), &args, &data_dir())
        .env("PROFUNDO_LOG", "info,tower_http=off")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("profundo serve starts");
    let stdout = child.stdout.take().unwrap();
    let mut first = String::new();
    BufReader::new(stdout).read_line(&mut first).unwrap();
    let url = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("first line of serve: {first:?}"))
        .to_string();
    let server = Server { child, url };
    let deadline = Instant::now() + Duration::from_secs(120);
    while get(&server, "/v2/health/ready").0 != 200 {
        assert!(Instant::now() < deadline, "the server never became ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// `(status, body)` of a GET.
pub(crate) fn get(s: &Server, path: &str) -> (u16, String) {
    let mut r = agent()
        .get(format!("{}{path}", s.url))
        .call()
        .expect("the server answers");
    (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
}

/// `(status, body)` of a POST of `body` as `content_type`.
pub(crate) fn post(s: &Server, path: &str, content_type: &str, body: &[u8]) -> (u16, String) {
    let mut r = agent()
        .post(format!("{}{path}", s.url))
        .header("Content-Type", content_type)
        .send(body)
        .expect("the server answers");
    (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

pub(crate) fn ok_json((status, body): (u16, String)) -> serde_json::Value {
    assert_eq!(status, 200, "{body}");
    json(&body)
}

/// The CLI's `--json` output, one value per line (or one pretty-printed value).
fn cli_json(args: &[&str]) -> Vec<serde_json::Value> {
    let out = ok(&repo(), args);
    let text = out.stdout.trim();
    if text.starts_with("{\n") {
        return vec![json(text)];
    }
    text.lines().map(json).collect()
}

pub(crate) fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub(crate) fn infer(s: &Server, model: &str, request: serde_json::Value) -> serde_json::Value {
    ok_json(post(
        s,
        &format!("/v2/models/{model}/infer"),
        "application/json",
        request.to_string().as_bytes(),
    ))
}

pub(crate) fn output<'a>(answer: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    answer["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == name)
        .unwrap_or_else(|| panic!("no output {name}: {answer}"))
}

fn wav(name: &str) -> PathBuf {
    repo().join("datasets/fsdd/recordings").join(name)
}

fn photo(name: &str) -> PathBuf {
    repo().join("datasets/face-photos").join(name)
}

#[test]
fn every_route_answers_what_the_cli_answers() {
    let m = models();
    let s = start(&[]);
    assert_eq!(get(&s, "/v2/health/live").0, 200);
    assert_eq!(ok_json(get(&s, "/v2"))["name"], "profundo");
    for (name, platform, input) in [
        ("speech", "profundo-speech", "AUDIO"),
        ("faces", "profundo-faces", "IMAGE"),
        ("translate", "profundo-translate", "TEXT"),
        ("recommend", "profundo-recommend", "USER"),
    ] {
        let meta = ok_json(get(&s, &format!("/v2/models/{name}")));
        assert_eq!(meta["platform"], platform, "{meta}");
        assert_eq!(meta["inputs"][0]["name"], input, "{meta}");
        assert_eq!(
            ok_json(get(&s, &format!("/v2/models/{name}/ready")))["ready"],
            true
        );
    }

    // Speech: the plain route and the protocol both give the CLI's answer.
    let clip = wav("3_theo_0.wav");
    let clip_s = clip.to_str().unwrap();
    let cli = cli_json(&[
        "speech",
        "recognize",
        "--model",
        &m.speech,
        "--json",
        clip_s,
    ]);
    let bytes = std::fs::read(&clip).unwrap();
    let path = format!("/v1/speech/speech/recognize?path={clip_s}");
    assert_eq!(ok_json(post(&s, &path, "audio/wav", &bytes)), cli[0]);
    let other = std::fs::read(wav("7_jackson_1.wav")).unwrap();
    let answer = infer(
        &s,
        "speech",
        serde_json::json!({"id": "r1", "inputs": [{"name": "AUDIO", "shape": [2], "datatype": "BYTES", "data": [b64(&bytes), b64(&other)]}]}),
    );
    assert_eq!(answer["id"], "r1");
    assert_eq!(output(&answer, "LABEL")["shape"], serde_json::json!([2]));
    assert_eq!(output(&answer, "LABEL")["data"][0], cli[0]["label"]);
    let score = output(&answer, "SCORE")["data"][0].as_f64().unwrap();
    assert!((score - cli[0]["score"].as_f64().unwrap()).abs() < 1e-5);

    // Faces: identify names the faces of the two-person photo as the CLI does.
    let pair = photo("pair.png");
    let pair_s = pair.to_str().unwrap();
    let cli = cli_json(&[
        "faces",
        "identify",
        "--model",
        &m.faces,
        "--gallery",
        &m.gallery,
        "--json",
        pair_s,
    ]);
    assert_eq!(cli.len(), 2, "{cli:?}");
    let bytes = std::fs::read(&pair).unwrap();
    let path = format!("/v1/faces/faces/identify?path={pair_s}");
    let served = ok_json(post(&s, &path, "image/png", &bytes));
    assert_eq!(served, serde_json::Value::Array(cli.clone()));
    let embedded = ok_json(post(&s, "/v1/faces/faces/embed", "image/png", &bytes));
    assert_eq!(embedded["faces"].as_array().unwrap().len(), 2);
    let answer = infer(
        &s,
        "faces",
        serde_json::json!({"inputs": [{"name": "IMAGE", "shape": [1], "datatype": "BYTES", "data": [b64(&bytes)]}]}),
    );
    assert_eq!(output(&answer, "NAME")["data"][0], cli[0]["name"]);
    assert_eq!(output(&answer, "BOX")["shape"], serde_json::json!([2, 4]));

    // Translation: one sentence gives the CLI's line; a list gives the list.
    let sentence = "Tengo hambre.";
    let cli = cli_json(&[
        "translate",
        "--model",
        &m.translate,
        "--from",
        "es",
        "--to",
        "en",
        "--json",
        sentence,
    ]);
    let body = serde_json::json!({"text": sentence, "from": "es", "to": "en"}).to_string();
    let served = ok_json(post(
        &s,
        "/v1/translate/translate",
        "application/json",
        body.as_bytes(),
    ));
    assert_eq!(served, cli[0]);
    let body = serde_json::json!({"text": [sentence, "Hola."], "from": "es", "to": "en"});
    let list = ok_json(post(
        &s,
        "/v1/translate/translate",
        "application/json",
        body.to_string().as_bytes(),
    ));
    assert_eq!(list[0], cli[0]);
    assert_eq!(list[1]["line"], 2);
    let answer = infer(
        &s,
        "translate",
        serde_json::json!({"parameters": {"from": "es", "to": "en"}, "inputs": [{"name": "TEXT", "shape": [1], "datatype": "BYTES", "data": [sentence]}]}),
    );
    assert_eq!(
        output(&answer, "TRANSLATION")["data"][0],
        cli[0]["translation"]
    );

    // Recommendations: top-K and similar items, as the CLI prints them.
    let user = "1";
    let cli = cli_json(&[
        "recommend",
        "--model",
        &m.recommend,
        "--user",
        user,
        "--json",
        "-k",
        "5",
    ]);
    let served = ok_json(get(&s, &format!("/v1/recommend/recommend?user={user}&k=5")));
    assert_eq!(served, cli[0]);
    let item = cli[0]["items"][0]["item"].as_str().unwrap().to_string();
    let cli_similar = cli_json(&[
        "recommend",
        "similar",
        "--model",
        &m.recommend,
        "--item",
        &item,
        "--json",
    ]);
    let served = ok_json(get(
        &s,
        &format!("/v1/recommend/recommend/similar?item={item}"),
    ));
    assert_eq!(served, cli_similar[0]);
    let answer = infer(
        &s,
        "recommend",
        serde_json::json!({"parameters": {"k": 5}, "inputs": [{"name": "USER", "shape": [1], "datatype": "BYTES", "data": [user]}]}),
    );
    assert_eq!(output(&answer, "ITEM")["shape"], serde_json::json!([1, 5]));
    assert_eq!(
        output(&answer, "ITEM")["data"][0],
        cli[0]["items"][0]["item"]
    );

    // Operations: metrics count what was served; the OpenAPI document lists the routes.
    let (status, metrics) = get(&s, "/metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("profundo_http_requests_total{route=\"/v2/models/{name}/infer\",method=\"POST\",status=\"200\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("profundo_batch_size_bucket{model=\"speech\""),
        "{metrics}"
    );
    let doc = ok_json(get(&s, "/openapi.json"));
    assert!(
        doc["paths"]["/v1/speech/{name}/recognize"].is_object(),
        "{doc}"
    );
}

/// `(status, error message)` of a request that must fail.
pub(crate) fn error(answer: (u16, String)) -> (u16, String) {
    let (status, body) = answer;
    let message = json(&body)["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message: {body}"))
        .to_string();
    (status, message)
}

#[test]
fn bad_requests_get_a_4xx_naming_the_problem() {
    // A body limit of about 1 KiB: the one over it is small enough that the client has sent it
    // all before the server answers 413 and closes the connection.
    let s = start(&["--max-body-mb", "0.001"]);
    let infer_path = "/v2/models/speech/infer";
    let json_post = |path: &str, body: serde_json::Value| {
        post(&s, path, "application/json", body.to_string().as_bytes())
    };
    let bad_base64 = serde_json::json!({"inputs": [{"name": "AUDIO", "shape": [1], "datatype": "BYTES", "data": ["%%%"]}]});
    let translate = "/v1/translate/translate";
    let big = vec![0u8; 4 * 1024];
    // (answer, expected status, words the error must hold)
    let cases = [
        (
            post(&s, infer_path, "application/json", b"{\"inputs\": ["),
            400,
            "malformed inference request",
        ),
        (
            json_post(infer_path, bad_base64),
            400,
            "input `AUDIO`, element 0: invalid base64",
        ),
        (
            post(
                &s,
                "/v1/speech/speech/recognize?path=junk.wav",
                "audio/wav",
                b"not a wav file at all",
            ),
            400,
            "junk.wav: not a WAV file",
        ),
        (
            post(
                &s,
                "/v1/faces/faces/embed?path=junk.png",
                "image/png",
                b"\x89PNG broken",
            ),
            400,
            "junk.png",
        ),
        (
            post(&s, "/v2/models/nobody/infer", "application/json", b"{}"),
            404,
            "no model named `nobody`",
        ),
        (
            post(&s, "/v1/speech/translate/recognize", "audio/wav", b""),
            404,
            "is a translate model, not a speech model",
        ),
        (
            json_post(
                translate,
                serde_json::json!({"text": "  ", "from": "es", "to": "en"}),
            ),
            400,
            "sentence 1 is empty",
        ),
        (
            json_post(
                translate,
                serde_json::json!({"text": "Hola.", "from": "fr", "to": "en"}),
            ),
            400,
            "this model translates",
        ),
        (
            get(&s, "/v1/recommend/recommend/similar?item=no-such-item"),
            404,
            "unknown item `no-such-item`",
        ),
        (
            get(&s, "/v1/recommend/recommend?user=1&k=0"),
            400,
            "k must be between 1",
        ),
        (get(&s, "/v1/recommend/recommend"), 400, "bad query string"),
        (
            post(&s, "/v1/speech/speech/recognize", "audio/wav", &big),
            413,
            "--max-body-mb",
        ),
    ];
    for (answer, want, needle) in cases {
        let (status, message) = error(answer);
        assert_eq!(status, want, "{message}");
        assert!(
            message.contains(needle),
            "expected `{needle}` in: {message}"
        );
    }
    // The server is still serving after all that.
    assert_eq!(get(&s, "/v2/health/ready").0, 200);
}

/// Sends a speech recognition in a thread; the answer's status comes back on join.
fn recognize_in_background(s: &Server, clip: &str) -> std::thread::JoinHandle<(u16, String)> {
    let url = format!("{}/v1/speech/speech/recognize", s.url);
    let bytes = std::fs::read(wav(clip)).unwrap();
    std::thread::spawn(move || {
        let mut r = agent()
            .post(url)
            .header("Content-Type", "audio/wav")
            .send(&bytes[..])
            .expect("the server answers");
        (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
    })
}

#[test]
fn concurrent_requests_share_a_batch() {
    let s = start(&["--max-queue-delay-ms", "1500", "--max-batch", "8"]);
    let a = recognize_in_background(&s, "1_theo_0.wav");
    let b = recognize_in_background(&s, "2_theo_0.wav");
    for t in [a, b] {
        let (status, body) = t.join().unwrap();
        assert_eq!(status, 200, "{body}");
    }
    let (_, metrics) = get(&s, "/metrics");
    let line = |name: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(&format!("{name}{{model=\"speech\"}}")))
            .unwrap_or_else(|| panic!("no {name}: {metrics}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .parse::<f64>()
            .unwrap()
    };
    assert_eq!(line("profundo_batch_size_count"), 1.0, "{metrics}");
    assert_eq!(line("profundo_batch_size_sum"), 2.0, "{metrics}");
}

#[test]
fn over_the_limits_requests_get_503_and_504() {
    // One request held 1.5 s in the batch queue fills `--concurrency 1`: the next is shed.
    let s = start(&["--max-queue-delay-ms", "1500", "--concurrency", "1"]);
    let held = recognize_in_background(&s, "1_theo_0.wav");
    std::thread::sleep(Duration::from_millis(400));
    let mut r = agent()
        .get(format!("{}/v2/models/speech", s.url))
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 503);
    assert_eq!(r.headers().get("retry-after").unwrap(), "1");
    let body = r.body_mut().read_to_string().unwrap();
    assert!(
        json(&body)["error"]
            .as_str()
            .unwrap()
            .contains("--concurrency"),
        "{body}"
    );
    assert_eq!(held.join().unwrap().0, 200);
    drop(s);

    // A request held longer than --timeout-ms is answered 504.
    let s = start(&["--max-queue-delay-ms", "1500", "--timeout-ms", "300"]);
    let (status, message) = error(recognize_in_background(&s, "1_theo_0.wav").join().unwrap());
    assert_eq!(status, 504, "{message}");
    assert!(message.contains("--timeout-ms"), "{message}");
}

#[test]
fn sigterm_finishes_the_request_in_flight_then_exits_0() {
    let mut s = start(&["--max-queue-delay-ms", "1500"]);
    let in_flight = recognize_in_background(&s, "4_jackson_0.wav");
    std::thread::sleep(Duration::from_millis(400));
    let pid = s.child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let (status, body) = in_flight.join().unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["path"], "-");
    let exit = s.child.wait().unwrap();
    assert!(exit.success(), "serve exited with {exit}");
}

#[test]
fn a_bad_model_or_gallery_stops_serve_with_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nothing");
    let spec = format!("x={}", missing.display());
    fails_with(
        tmp.path(),
        &["serve", "--model", &spec],
        &["model `x`", "does not exist"],
    );
    let m = models();
    let speech = format!("s={}", m.speech);
    let gallery = format!("s={}", m.gallery);
    fails_with(
        tmp.path(),
        &["serve", "--model", &speech, "--gallery", &gallery],
        &["`s` is a speech model; galleries are for faces models"],
    );
    fails_with(
        tmp.path(),
        &["serve", "--model", "no-equals-sign"],
        &["expected NAME=PATH"],
    );
}

#[test]
fn bench_serve_drives_every_model_at_each_concurrency() {
    let m = models();
    let specs = [
        format!("speech={}", m.speech),
        format!("faces={}", m.faces),
        format!("translate={}", m.translate),
        format!("recommend={}", m.recommend),
    ];
    let mut args = vec!["bench", "serve", "--requests", "12", "--seconds", "20"];
    for s in &specs {
        args.extend(["--model", s]);
    }
    args.extend(["--concurrency-levels", "1,4", "--json"]);
    let out = ok(&repo(), &args);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(rows.len(), 8, "{rows:?}");
    for (row, (domain, concurrency)) in rows.iter().zip(
        ["speech", "faces", "translate", "recommend"]
            .iter()
            .flat_map(|d| [(d, 1), (d, 4)]),
    ) {
        let r = &row["report"];
        assert!(row["target"].as_str().unwrap().starts_with(domain), "{row}");
        assert_eq!(r["concurrency"], concurrency, "{row}");
        assert_eq!(r["ok"], 12, "every request answered 200: {row}");
        assert_eq!(r["errors"], 0, "{row}");
        assert!(r["p99_ms"].as_f64().unwrap() >= r["p50_ms"].as_f64().unwrap());
    }
}
