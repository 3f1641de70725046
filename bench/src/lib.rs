//! What the benchmarks share: their error type, how they print, and how a
//! process reads its own memory.

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// One line of a benchmark's figures, on stdout.
#[expect(clippy::print_stdout, reason = "a benchmark prints its figures")]
pub fn say(text: &str) {
    println!("{text}");
}

/// `say!("{x} rows/s")`: [`say`] with `format!` arguments.
#[macro_export]
macro_rules! say {
    ($($t:tt)*) => {
        $crate::say(&format!($($t)*))
    };
}

/// A line of `/proc/self/status` (`VmHWM:`, `VmRSS:`), in kB.
pub fn status_kb(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .trim()
        .trim_end_matches(" kB")
        .trim()
        .parse()
        .ok()
}

/// Fails unless the emulator's endpoints are set (`make <target>` sets them).
pub fn need_emulator(target: &str) -> Result<(), Error> {
    std::env::var("AWS_ENDPOINT_URL")
        .map(|_| ())
        .map_err(|_| format!("run through `make {target}` (needs AWS_ENDPOINT_URL)").into())
}

/// The cores this machine gives the benchmark.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(0, |n| n.get())
}

/// Every resource of the template under a fresh prefix starting `name`, on
/// the emulator; `destroy` it when done.
pub async fn fresh_stack(name: &str) -> Result<flashcart_local::LocalStack, Error> {
    let sdk = flashcart_local::sdk_config(false).await?;
    let prefix = format!("{name}{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
    flashcart_local::LocalStack::deploy(
        sdk,
        &prefix,
        shared::config::Secret::from(flashcart_local::jwt::DEFAULT_SECRET),
        &[],
    )
    .await
}

/// Runs this benchmark's own binary again with `--child`, as the function
/// it measures would run on Lambda: in a process of its own, with `env` (the
/// function's resolved environment) handed over as JSON in `var` and the
/// C library's `MALLOC_*` settings set as Lambda would. The seconds it took
/// and the JSON it printed.
pub async fn child_process(
    var: &str,
    env: &std::collections::BTreeMap<String, String>,
    what: &str,
) -> Result<(f64, serde_json::Value), Error> {
    let started = std::time::Instant::now();
    let mut child = tokio::process::Command::new(std::env::current_exe()?);
    for (k, v) in env.iter().filter(|(k, _)| k.starts_with("MALLOC_")) {
        child.env(k, v);
    }
    let out = child
        .arg("--child")
        .env(var, serde_json::to_string(env)?)
        .stderr(std::process::Stdio::inherit())
        .output()
        .await?;
    let seconds = started.elapsed().as_secs_f64();
    if !out.status.success() {
        return Err(format!("the {what} process failed: {}", out.status).into());
    }
    Ok((seconds, serde_json::from_slice(&out.stdout)?))
}
