//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use profundo_core::backend::BackendKind;

/// Applied deep learning in Rust: declarative pipelines and the apps that use their models.
#[derive(Debug, Parser)]
#[command(name = "profundo", version, about)]
pub struct Cli {
    /// Only print warnings and errors on standard error.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a pipeline (re-using cached stage outputs), or resume an interrupted run.
    Run(RunArgs),
    /// Validate a pipeline file without running it.
    Validate(ValidateArgs),
    /// List every stage kind with its inputs, output and parameters.
    List(ListArgs),
    /// Show a run's settings, stages and metrics.
    Show(ShowArgs),
    /// Compare the metrics of two runs side by side.
    Compare(CompareArgs),
    /// Speech apps: recognise clips, spot words in a recording.
    Speech(SpeechArgs),
    /// Face apps: enroll people, identify and verify faces, manage a gallery.
    Faces(FacesArgs),
    /// Recommendation app: top-K items for a user (`--user`), or items similar to an item
    /// (`similar --item`).
    Recommend(RecommendArgs),
    /// Translation app: translate a sentence, a file (`--input`) or standard input, line for
    /// line.
    Translate(TranslateArgs),
    /// Traffic-sign app: classify sign images, explain an answer with a heat map.
    Signs(SignsArgs),
    /// Serve trained models over HTTP: the Open Inference Protocol v2 and plain routes
    /// that answer what the apps' `--json` prints.
    Serve(crate::serve::ServeArgs),
    /// Benchmarks (speed targets live here, not in tests).
    Bench(BenchArgs),
    /// Datasets: list them, verify their checksums, fetch the ones not shipped.
    Data(DataArgs),
}

#[derive(Debug, Args)]
pub struct DataArgs {
    #[command(subcommand)]
    pub command: DataCommand,
}

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Every dataset the shipped pipelines read: licence, shipped or not, where it is looked
    /// for, present, verified.
    List(DataListArgs),
    /// Check every file of a dataset (or of all present ones) against its sha256 manifest.
    Verify(DataVerifyArgs),
    /// Download (or copy from a folder or archive) a dataset into the data folder, verify it
    /// and move it into place atomically.
    Fetch(DataFetchArgs),
}

#[derive(Debug, Args)]
pub struct DataListArgs {
    /// Print JSON rows instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DataVerifyArgs {
    /// Dataset name (`profundo data list`); all present datasets when left out.
    pub name: Option<String>,
    /// Print JSON reports.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DataFetchArgs {
    /// Dataset name (`profundo data list`).
    pub name: String,
    /// Take it from this URL (http/https), folder or archive (zip, tar.gz, tar) instead of
    /// its official source.
    #[arg(long, value_name = "URL_OR_PATH")]
    pub from: Option<String>,
    /// Fetch again even when a verified copy is in place.
    #[arg(long)]
    pub force: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Pipeline file (not needed with --resume).
    #[arg(required_unless_present = "resume")]
    pub pipeline: Option<PathBuf>,
    /// Override a parameter: `stage.param=value` (or `seed=7`, `backend=flex`).
    #[arg(long = "set", value_name = "STAGE.PARAM=VALUE")]
    pub set: Vec<String>,
    /// Recompute every stage, ignoring the cache.
    #[arg(long)]
    pub force: bool,
    /// Recompute this stage and everything after it.
    #[arg(long, value_name = "STAGE")]
    pub from: Option<String>,
    /// Run only this stage and the stages it needs.
    #[arg(long, value_name = "STAGE")]
    pub until: Option<String>,
    /// Continue an interrupted run (its directory) from the last checkpoint.
    #[arg(long, value_name = "RUN_DIR", conflicts_with_all = ["pipeline", "set"])]
    pub resume: Option<PathBuf>,
    /// Where runs are written.
    #[arg(long, default_value = "runs", value_name = "DIR")]
    pub runs_dir: PathBuf,
    /// Fail at once if another run of this pipeline is in progress, instead of waiting.
    #[arg(long)]
    pub no_wait: bool,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Pipeline file.
    pub pipeline: PathBuf,
    /// Overrides to validate with.
    #[arg(long = "set", value_name = "STAGE.PARAM=VALUE")]
    pub set: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Run directory (`runs/<pipeline>/<run-id>` or `runs/<pipeline>/latest`).
    pub run: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// First run directory.
    pub a: PathBuf,
    /// Second run directory.
    pub b: PathBuf,
    /// Print JSON rows instead of a Markdown table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SpeechArgs {
    #[command(subcommand)]
    pub command: SpeechCommand,
}

#[derive(Debug, Subcommand)]
pub enum SpeechCommand {
    /// Recognise WAV clips: label, probability and the top 3 per file.
    Recognize(RecognizeArgs),
    /// Find spoken words in a longer recording: start/end seconds and label of each.
    Spot(SpotArgs),
}

#[derive(Debug, Args)]
pub struct SignsArgs {
    #[command(subcommand)]
    pub command: SignsCommand,
}

#[derive(Debug, Subcommand)]
pub enum SignsCommand {
    /// Classify sign images (PNG, JPEG, PPM, GIF, BMP): class, name, probability and the
    /// runners-up per image. An image that is not roughly square is taken as a photo: its
    /// central square is classified, and the answer says so.
    Classify(ClassifyArgs),
}

#[derive(Debug, Args)]
pub struct ClassifyArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Image files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// One JSON object per line (`path`, `class`, `name`, `score`, `top`).
    #[arg(long)]
    pub json: bool,
    /// How many classes to list per image.
    #[arg(long, default_value_t = 3)]
    pub top: usize,
    /// Write an occlusion heat map of each answer to this PNG (with several images,
    /// `OUT-<image name>.png`).
    #[arg(long, value_name = "OUT.png")]
    pub explain: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ModelArgs {
    /// Model directory, run directory or `runs/<pipeline>` (uses `latest`).
    #[arg(long, value_name = "MODEL_OR_RUN_DIR")]
    pub model: PathBuf,
    /// Backend to run the model on.
    #[arg(long, default_value = "flex")]
    pub backend: BackendKind,
    /// Device: `cpu`, or `cuda:N` with the tch backend.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

#[derive(Debug, Args)]
pub struct RecognizeArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// WAV files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// One JSON object per line (`path`, `label`, `score`, `top`).
    #[arg(long)]
    pub json: bool,
    /// The files are one speaker's: a model trained with `normalize = "speaker"` or
    /// `batch_norm = "group"` pools its normalisation statistics over all of them (the
    /// more clips, the better).
    #[arg(long)]
    pub same_speaker: bool,
}

#[derive(Debug, Args)]
pub struct SpotArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// A WAV recording.
    pub file: PathBuf,
    /// Speech if within this many dB of the loudest part.
    #[arg(long, default_value_t = 30.0)]
    pub threshold_db: f32,
    /// Drop detections below this probability.
    #[arg(long, default_value_t = 0.5)]
    pub min_score: f32,
    /// One JSON object per line (`start`, `end`, `label`, `score`).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: BenchCommand,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Latency of `speech recognize` on one clip, model already loaded.
    Recognize(BenchRecognizeArgs),
    /// Latency of `signs classify` on one image and throughput on a batch of 64, model
    /// already loaded.
    Signs(BenchRecognizeArgs),
    /// Face embedding latency and identification against a synthetic 10,000-person gallery.
    Faces(BenchFacesArgs),
    /// Top-K latency for a trained recommender and for a synthetic 1,000,000-item catalogue.
    Recommend(BenchRecommendArgs),
    /// Ingesting a large generated Parquet rating table: time and peak memory.
    Ingest(BenchIngestArgs),
    /// Translation latency for one short sentence and throughput for a 1,000-line file.
    Translate(BenchTranslateArgs),
    /// Every domain model's training step, latency and throughput per backend, next to the
    /// same model in PyTorch.
    Models(BenchModelsArgs),
    /// Requests per second and p50/p99 latency of `profundo serve` under a bounded loopback
    /// load, per model and concurrency.
    Serve(crate::serve::BenchServeArgs),
}

#[derive(Debug, Args)]
pub struct BenchModelsArgs {
    /// Models to time, comma-separated (default: all): speech-cnn, faces-resnet,
    /// translate-transformer, recommend-mf, signs-cnn.
    #[arg(long, value_delimiter = ',')]
    pub models: Vec<String>,
    /// Backends to time, comma-separated (default: every compiled backend but the
    /// deprecated ndarray).
    #[arg(long, value_delimiter = ',')]
    pub backends: Vec<BackendKind>,
    /// Python with PyTorch (default: $PROFUNDO_PYTHON, else the environment that
    /// scripts/setup-torch.sh creates, else python3).
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// Time profundo only.
    #[arg(long)]
    pub no_pytorch: bool,
    /// Alternating rounds per measure: each gives one profundo / PyTorch ratio (more rounds,
    /// a narrower interval).
    #[arg(long, default_value_t = 24)]
    pub rounds: usize,
    /// Sessions of freshly started worker processes the rounds are spread over (processes
    /// of one program differ; more sessions, an interval that holds from run to run).
    #[arg(long, default_value_t = 4)]
    pub sessions: usize,
    /// Seconds of timed calls per side and measure, spread over the rounds (a burst is at
    /// least one call).
    #[arg(long, default_value_t = 4.0)]
    pub seconds: f64,
    /// Print JSON rows (model, backend, measure, profundo_ms, pytorch_ms, ratio, ratio_lo,
    /// ratio_hi, verdict, ...).
    #[arg(long)]
    pub json: bool,
    /// Device: `cpu`, or `cuda` / `cuda:N` (the tch backend only; the default backends
    /// become tch alone). The PyTorch rows run on the same device.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Internal: serve timing requests for one model in this process.
    #[arg(long, hide = true)]
    pub worker: Option<String>,
    /// Internal: the worker's thread count (the parent's).
    #[arg(long, hide = true)]
    pub threads: Option<usize>,
}

#[derive(Debug, Args)]
pub struct BenchTranslateArgs {
    /// A translation model directory or run directory.
    #[arg(long)]
    pub model: PathBuf,
    /// Source language (default: the model's only direction, or its first).
    #[arg(long)]
    pub from: Option<String>,
    /// Target language.
    #[arg(long)]
    pub to: Option<String>,
    /// Lines for the throughput row: the first 1,000 lines of this file (default: the
    /// shipped Tatoeba file's source column).
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Lines in the throughput row.
    #[arg(long, default_value_t = 1000)]
    pub lines: usize,
    /// Beam size of the beam rows (1 to 64).
    #[arg(long, default_value_t = 5, value_parser = beam_size)]
    pub beam: usize,
    /// Timed repetitions of the one-sentence latency.
    #[arg(long, default_value_t = 50)]
    pub iters: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BenchRecommendArgs {
    /// A recommender model directory or run directory.
    #[arg(long)]
    pub model: PathBuf,
    /// The user whose top-K is timed (default: the first user with a history).
    #[arg(long)]
    pub user: Option<String>,
    /// Items in the synthetic catalogue.
    #[arg(long, default_value_t = 1_000_000)]
    pub items: usize,
    /// Embedding size of the synthetic catalogue.
    #[arg(long, default_value_t = 64)]
    pub dim: usize,
    /// Timed repetitions.
    #[arg(long, default_value_t = 200)]
    pub iters: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BenchIngestArgs {
    /// The Parquet file (generated first when it does not exist).
    #[arg(long, default_value = "target/bench-ratings.parquet")]
    pub file: PathBuf,
    /// Rows to generate.
    #[arg(long, default_value_t = 20_000_000)]
    pub rows: usize,
    /// Only generate the file (used by the bench itself, in a separate process).
    #[arg(long, hide = true)]
    pub generate_only: bool,
}

#[derive(Debug, Args)]
pub struct BenchFacesArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// A face image to embed.
    pub image: PathBuf,
    /// A whole photo to time face detection (MTCNN) and detect + align + embed on
    /// (`datasets/face-photos/pair.png` is 640x480 with two faces).
    #[arg(long)]
    pub photo: Option<PathBuf>,
    /// People in the synthetic gallery.
    #[arg(long, default_value_t = 10_000)]
    pub gallery_size: usize,
    /// Timed repetitions.
    #[arg(long, default_value_t = 100)]
    pub iters: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BenchRecognizeArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The clip to recognise (`bench signs`: the sign image to classify).
    pub file: PathBuf,
    /// Timed repetitions.
    #[arg(long, default_value_t = 200)]
    pub iters: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct FacesArgs {
    #[command(subcommand)]
    pub command: FacesCommand,
}

#[derive(Debug, Subcommand)]
pub enum FacesCommand {
    /// Find every face in photos (MTCNN): box, score and five landmarks per face.
    Detect(DetectArgs),
    /// Add a person's images to a gallery (an existing name gets the images added).
    Enroll(EnrollArgs),
    /// Name the person in each image, or `unknown` under the model's threshold.
    Identify(IdentifyArgs),
    /// Whether two images show the same person.
    Verify(VerifyArgs),
    /// List who is enrolled, or remove someone.
    Gallery(GalleryArgs),
}

#[derive(Debug, Args)]
pub struct EnrollArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Gallery file (created if missing).
    #[arg(long)]
    pub gallery: PathBuf,
    /// The person's name.
    #[arg(long)]
    pub name: String,
    /// Photos of the person (one face each, unless `--largest`).
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    #[command(flatten)]
    pub finding: FindingArgs,
    /// In a photo with several faces, enroll the largest.
    #[arg(long)]
    pub largest: bool,
}

/// How the face apps find faces in their images.
#[derive(Debug, Args)]
pub struct FindingArgs {
    /// The images are face crops already (like the training images): use each one whole
    /// instead of detecting and aligning the faces in it.
    #[arg(long)]
    pub no_detect: bool,
    /// Smallest face searched for, in pixels.
    #[arg(long, default_value_t = 20.0)]
    pub min_face_size: f64,
}

#[derive(Debug, Args)]
pub struct DetectArgs {
    /// Photos.
    #[arg(required = true)]
    pub photos: Vec<PathBuf>,
    /// One JSON object per photo and line: `path`, `faces` (each `box` [x1, y1, x2, y2],
    /// `score`, `landmarks` [[x, y]; 5]: eyes, nose, mouth corners), in the photo's pixels.
    #[arg(long)]
    pub json: bool,
    /// Write each photo with its boxes and landmarks drawn, as PNG: to this file for one
    /// photo, into this folder (`<photo name>.png`) for several.
    #[arg(long, value_name = "OUT")]
    pub draw: Option<PathBuf>,
    /// Smallest face searched for, in pixels (smaller is slower).
    #[arg(long, default_value_t = 20.0)]
    pub min_face_size: f64,
}

#[derive(Debug, Args)]
pub struct IdentifyArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Gallery file.
    #[arg(long)]
    pub gallery: PathBuf,
    /// Photos: every face in each is identified.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// One JSON object per face and line (`path`, `box` [x1, y1, x2, y2], `name` ("unknown"
    /// under the threshold), `nearest`, `score`).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub finding: FindingArgs,
    /// Write each photo with its faces drawn (green: known, red: unknown), as PNG: to this
    /// file for one photo, into this folder (`<photo name>.png`) for several.
    #[arg(long, value_name = "OUT")]
    pub draw: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// First image.
    pub image_a: PathBuf,
    /// Second image.
    pub image_b: PathBuf,
    /// Print JSON (`same`, `score`, `threshold`).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub finding: FindingArgs,
    /// In a photo with several faces, compare the largest.
    #[arg(long)]
    pub largest: bool,
}

#[derive(Debug, Args)]
pub struct GalleryArgs {
    /// Gallery file.
    #[arg(long)]
    pub gallery: PathBuf,
    /// Remove this person.
    #[arg(long, value_name = "NAME")]
    pub remove: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct RecommendArgs {
    #[command(subcommand)]
    pub command: Option<RecommendCommand>,
    /// A model directory, a run directory or a pipeline's runs folder.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// The user to recommend for (raw id as in the data).
    #[arg(long)]
    pub user: Option<String>,
    /// How many items.
    #[arg(short = 'k', long = "top", default_value_t = 10)]
    pub k: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum RecommendCommand {
    /// Items nearest to an item by embedding (cosine).
    Similar(SimilarArgs),
}

#[derive(Debug, Args)]
pub struct SimilarArgs {
    /// A model directory, a run directory or a pipeline's runs folder.
    #[arg(long)]
    pub model: PathBuf,
    /// The item (raw id as in the data).
    #[arg(long)]
    pub item: String,
    /// How many items.
    #[arg(short = 'k', long = "top", default_value_t = 10)]
    pub k: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct TranslateArgs {
    /// A model directory, a run directory or a pipeline's runs folder.
    #[arg(long)]
    pub model: PathBuf,
    /// Source language (may be left out when the model has one direction).
    #[arg(long)]
    pub from: Option<String>,
    /// Target language.
    #[arg(long)]
    pub to: Option<String>,
    /// Beam size, 1 (greedy) to 64.
    #[arg(long, default_value_t = 5, value_parser = beam_size)]
    pub beam: usize,
    /// Backend to run the model on.
    #[arg(long, default_value = "flex")]
    pub backend: BackendKind,
    /// Device: `cpu`, or `cuda:N` with the tch backend.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Translate this file, one sentence per line (`-`, or neither TEXT nor --input: standard
    /// input).
    #[arg(long, conflicts_with = "text")]
    pub input: Option<PathBuf>,
    /// Print JSON (one object per line).
    #[arg(long)]
    pub json: bool,
    /// The sentence to translate.
    pub text: Vec<String>,
}

/// A beam size: 1 (greedy decoding) to 64.
fn beam_size(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(b @ 1..=64) => Ok(b),
        Ok(b) => Err(format!("a beam of {b}: the beam size is 1 (greedy) to 64")),
        Err(e) => Err(format!("`{s}` is not a beam size: {e}")),
    }
}
