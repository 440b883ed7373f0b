//! Finding and loading workflow files: the default directories, `*.yaml`/`*.yml` in a
//! directory, and reporting every file's problems on stderr.

use std::path::{Path, PathBuf};

use super::exit::CliError;
use crate::compiler::{self, Code, Diagnostic, GeneratedFile, Workflow, diagnostic};

pub const SYSTEM_WORKFLOWS: &str = "/etc/flow/workflows";
pub const SYSTEM_UNITS: &str = "/etc/systemd/system";

/// The workflows directory for the system or (with `--user`) the calling user.
pub fn workflows_dir(user: bool) -> PathBuf {
    if user {
        config_home().join("flow/workflows")
    } else {
        PathBuf::from(SYSTEM_WORKFLOWS)
    }
}

/// The files a command names, or the workflows directory when it names none; that
/// directory must exist (an empty one is fine: `flow apply` of it removes every workflow).
pub fn paths_or_default(
    paths: &[PathBuf],
    user: bool,
    verb: &str,
) -> Result<Vec<PathBuf>, CliError> {
    if !paths.is_empty() {
        return Ok(paths.to_vec());
    }
    let dir = workflows_dir(user);
    if !dir.is_dir() {
        return Err(CliError::Invalid(format!(
            "{} does not exist: put your workflow files there (`mkdir -p {}`), or name them (`flow {verb}{} FILE...`)",
            dir.display(),
            dir.display(),
            super::user_flag(user)
        )));
    }
    Ok(vec![dir])
}

/// The unit directory flow installs into for the system or the calling user.
pub fn units_dir(user: bool) -> PathBuf {
    if user {
        config_home().join("systemd/user")
    } else {
        PathBuf::from(SYSTEM_UNITS)
    }
}

fn config_home() -> PathBuf {
    crate::home::xdg_dir("XDG_CONFIG_HOME", ".config")
}

/// Expand directories into their `*.yaml` and `*.yml` files, sorted; keep files as given.
pub fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, CliError> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let entries = std::fs::read_dir(path)
                .map_err(|e| CliError::io(format!("cannot read {}", path.display()), e))?;
            let mut found: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.is_file()
                        && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
                })
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

/// One loaded workflow file.
pub struct Loaded {
    pub path: PathBuf,
    pub text: String,
}

/// Largest workflow file flow reads. A workflow of a hundred tasks is a few KiB; past
/// this, a file is refused before it is parsed, so that no input can make `validate`,
/// `plan` or `apply` take more than seconds and a few hundred MiB.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// Why a workflow file could not be read as text.
pub enum ReadError {
    /// Not a workflow: a FIFO, a device, over the size limit, not UTF-8. Reported like
    /// a diagnostic; the other files are still checked.
    Invalid(Box<Unreadable>),
    /// The system refused (not found, permissions).
    Io(CliError),
}

/// A file that is no workflow's, and why.
pub struct Unreadable {
    pub diagnostic: Diagnostic,
    /// The text the diagnostic quotes (the bytes read, made UTF-8), if any.
    pub source: String,
}

impl ReadError {
    /// A file that is no workflow's, for a reason that quotes none of it.
    fn invalid(diagnostic: Diagnostic) -> ReadError {
        ReadError::Invalid(Box::new(Unreadable {
            diagnostic,
            source: String::new(),
        }))
    }
}

impl Unreadable {
    /// As printed for a person, `path` as given.
    pub fn render(&self, path: &Path) -> String {
        self.diagnostic
            .render(&path.to_string_lossy(), &self.source)
    }
}

/// Read a workflow file: a regular file (a FIFO would block forever, `/dev/zero` never
/// ends) of at most [`MAX_FILE_BYTES`], in UTF-8. At most the limit and one byte more are
/// read, whatever the file claims to be.
pub fn read_text(path: &Path) -> Result<String, ReadError> {
    use std::io::Read;
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let shown = crate::compiler::escape::printable(&path.to_string_lossy()).into_owned();
    // Non-blocking: opening a FIFO for reading would otherwise wait for a writer.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| ReadError::Io(CliError::io(format!("cannot read {shown}"), e)))?;
    let kind = file
        .metadata()
        .map_err(|e| ReadError::Io(CliError::io(format!("cannot read {shown}"), e)))?
        .file_type();
    if !kind.is_file() {
        let what = if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a FIFO (named pipe)"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "not a regular file"
        };
        return Err(ReadError::invalid(
            Diagnostic::new(
                Code::NotAFile,
                None,
                format!("{} is {what}, not a workflow file", path.to_string_lossy()),
            )
            .help("name a regular YAML file"),
        ));
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ReadError::Io(CliError::io(format!("cannot read {shown}"), e)))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(ReadError::invalid(
            Diagnostic::new(
                Code::FileTooLarge,
                None,
                format!(
                    "{} is larger than {} MiB, the most a workflow file may hold",
                    path.to_string_lossy(),
                    MAX_FILE_BYTES >> 20
                ),
            )
            .help("keep large scripts and data in files of their own and run or read them from the workflow"),
        ));
    }
    match compiler::decode(&bytes) {
        Ok(_) => String::from_utf8(bytes).map_err(|e| {
            let lossy = String::from_utf8_lossy(e.as_bytes()).into_owned();
            ReadError::Invalid(Box::new(Unreadable {
                diagnostic: Diagnostic::new(Code::NotUtf8, None, "the file is not UTF-8 text"),
                source: lossy,
            }))
        }),
        Err((diagnostic, source)) => Err(ReadError::Invalid(Box::new(Unreadable {
            diagnostic,
            source,
        }))),
    }
}

/// A workflow compiled from its file.
pub struct Compiled {
    pub path: PathBuf,
    /// The YAML file's text, for messages that quote it.
    pub text: String,
    pub workflow: Workflow,
    pub files: Vec<GeneratedFile>,
}

/// `path` made absolute without `..`: resolved when it exists, else joined to the current
/// directory.
pub fn absolute(path: &Path) -> PathBuf {
    std::fs::canonicalize(path)
        .or_else(|_| std::path::absolute(path))
        .unwrap_or_else(|_| path.to_path_buf())
}

/// One file checked: what it compiles to, or its problems.
pub struct Checked {
    pub path: PathBuf,
    pub outcome: Result<Compiled, Vec<Diagnostic>>,
}

/// Compile every file; print every problem of every file to stderr. Fails if any file
/// is invalid, or two files define the same workflow.
pub fn compile_all(paths: &[PathBuf], unit_dir: &Path) -> Result<Vec<Compiled>, CliError> {
    let checked = check_all(paths, unit_dir)?;
    let invalid = checked.iter().filter(|c| c.outcome.is_err()).count();
    if invalid > 0 {
        return Err(invalid_files(invalid));
    }
    Ok(checked.into_iter().filter_map(|c| c.outcome.ok()).collect())
}

/// The error that ends a command when `count` files are invalid (their problems printed).
pub fn invalid_files(count: usize) -> CliError {
    let noun = if count == 1 { "file is" } else { "files are" };
    CliError::Invalid(format!("{count} workflow {noun} invalid"))
}

/// Compile every file, and print every problem of every file to stderr as it is found;
/// the problems are also returned, file by file. Only a file that cannot be read at all
/// (not found, permissions) ends the check.
pub fn check_all(paths: &[PathBuf], unit_dir: &Path) -> Result<Vec<Checked>, CliError> {
    let mut checked: Vec<Checked> = Vec::with_capacity(paths.len());
    for path in paths {
        let outcome = check_one(path, unit_dir, &checked)?;
        checked.push(Checked {
            path: path.clone(),
            outcome,
        });
    }
    Ok(checked)
}

/// [`check_all`] of one file, after the files in `before` (a workflow name may be taken).
fn check_one(
    path: &Path,
    unit_dir: &Path,
    before: &[Checked],
) -> Result<Result<Compiled, Vec<Diagnostic>>, CliError> {
    let loaded = match read_text(path) {
        Ok(text) => Loaded {
            path: path.to_path_buf(),
            text,
        },
        Err(ReadError::Io(e)) => return Err(e),
        Err(ReadError::Invalid(u)) => {
            // Reported like the problems of a file; the other files are still checked.
            eprintln!("{}", u.render(path));
            return Ok(Err(vec![u.diagnostic]));
        }
    };
    let shown = path.display().to_string();
    let opts = compiler::EmitOptions {
        // Units name their source in `SourcePath=`, which systemd wants absolute and
        // normalized; errors below still show the path as the user wrote it.
        source_path: absolute(path).display().to_string(),
        unit_dir: absolute(unit_dir).display().to_string(),
        flow_bin: flow_bin(),
    };
    match compiler::compile_with(&loaded.text, &opts) {
        Ok((workflow, files)) => {
            let taken = before
                .iter()
                .filter_map(|c| c.outcome.as_ref().ok())
                .find(|c| c.workflow.name == workflow.name);
            if let Some(other) = taken {
                let help = "workflow names come from the file name or `name:`; rename one";
                eprintln!(
                    "error: workflow `{}` is defined twice\n  --> {}\n  --> {}\n   = help: {help}\n",
                    workflow.name,
                    other.path.display(),
                    shown
                );
                let d = Diagnostic::new(
                    Code::DuplicateWorkflow,
                    None,
                    format!(
                        "workflow `{}` is defined twice: {} defines it too",
                        workflow.name,
                        other.path.display()
                    ),
                )
                .help(help);
                return Ok(Err(vec![d]));
            }
            Ok(Ok(Compiled {
                path: loaded.path,
                text: loaded.text,
                workflow,
                files,
            }))
        }
        Err(diags) => {
            eprintln!("{}", diagnostic::render_all(&diags, &shown, &loaded.text));
            Ok(Err(diags))
        }
    }
}

/// Resolve a workflow given by name (in the workflows directory) or by path.
pub fn find(workflow: &str, user: bool) -> Result<PathBuf, CliError> {
    let as_path = Path::new(workflow);
    if workflow.contains('/')
        || as_path
            .extension()
            .is_some_and(|e| e == "yaml" || e == "yml")
    {
        return Ok(as_path.to_path_buf());
    }
    let dir = workflows_dir(user);
    for ext in ["yaml", "yml"] {
        let p = dir.join(format!("{workflow}.{ext}"));
        if p.is_file() {
            return Ok(p);
        }
    }
    // A file whose `name:` differs from its stem.
    for path in expand(std::slice::from_ref(&dir)).unwrap_or_default() {
        if let Ok(text) = read_text(&path)
            && compiler::check(&path.display().to_string(), &text).is_ok_and(|w| w.name == workflow)
        {
            return Ok(path);
        }
    }
    Err(CliError::Invalid(format!(
        "no workflow `{workflow}` in {}",
        dir.display()
    )))
}

/// The flow binary units should call: this one, wherever it was installed.
pub fn flow_bin() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.to_str().map(str::to_string))
        .unwrap_or_else(|| compiler::emit::DEFAULT_FLOW_BIN.to_string())
}

/// How an installed workflow's YAML file stands against the units `flow apply` made of it.
/// Runs always use the installed units: a file edited and not applied yet changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceState {
    Applied,
    /// Edited since `flow apply`: applying it would change the units.
    Changed,
    /// Edited since `flow apply`, and no longer valid.
    Invalid,
    /// Gone: `flow apply` would remove the workflow.
    Missing,
}

impl SourceState {
    /// For `--json`.
    pub fn key(self) -> &'static str {
        match self {
            SourceState::Applied => "applied",
            SourceState::Changed => "changed",
            SourceState::Invalid => "invalid",
            SourceState::Missing => "missing",
        }
    }

    /// What to tell the user, when there is something to tell.
    pub fn note(self, source: &str) -> Option<String> {
        let note = match self {
            SourceState::Applied => return None,
            SourceState::Changed => format!(
                "{source} changed since `flow apply`: runs still use the units applied before (`flow plan` shows the difference, `flow apply` applies it)"
            ),
            SourceState::Invalid => format!(
                "{source} changed since `flow apply` and is not valid: runs still use the units applied before (`flow validate {source}` says what is wrong)"
            ),
            SourceState::Missing => format!(
                "{source} is gone: runs still use the units applied before (`flow apply` removes them)"
            ),
        };
        Some(note)
    }
}

/// Compiles an installed workflow's YAML file again, with the flow binary and unit directory
/// its units were made with, and compares. A file that cannot be read (not found aside)
/// counts as applied: nothing is known against it.
pub fn source_state(
    workflow: &str,
    source: &str,
    installed: &std::collections::BTreeMap<String, crate::install::InstalledFile>,
) -> SourceState {
    let text = match read_text(Path::new(source)) {
        Ok(text) => text,
        Err(ReadError::Io(_)) if !Path::new(source).exists() => return SourceState::Missing,
        Err(ReadError::Invalid(_)) => return SourceState::Invalid,
        Err(ReadError::Io(_)) => return SourceState::Applied,
    };
    let Some((flow_bin, unit_dir)) = crate::install::applied_with(installed, workflow) else {
        return SourceState::Applied;
    };
    let opts = compiler::EmitOptions {
        source_path: source.to_string(),
        unit_dir,
        flow_bin,
    };
    match compiler::compile_with(&text, &opts) {
        Err(_) => SourceState::Invalid,
        Ok((_, files)) if crate::install::up_to_date(installed, workflow, &files) => {
            SourceState::Applied
        }
        Ok(_) => SourceState::Changed,
    }
}
