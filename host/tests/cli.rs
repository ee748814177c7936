//! The `codeai` binary end to end: `build` the example into a fresh directory, `inspect` one of
//! the components, `check` good and broken files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const EXAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../examples/05-scheduled-jobs/scheduled-jobs.codeai"
);

const JOBS: [&str; 10] = [
    "DailySalesReport",
    "WeeklyInventoryReport",
    "MonthlyBusinessSummary",
    "CleanupExpiredSessions",
    "CleanupJobExecutions",
    "CleanupExpiredReports",
    "DatabaseMaintenance",
    "SyncExternalInventory",
    "ProcessPendingWebhooks",
    "LowStockAlert",
];

fn codeai(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_codeai"))
        .args(args)
        .output()
        .expect("the codeai binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A new empty directory for one test, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("codeai-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn str(&self) -> &str {
        self.0.to_str().expect("a UTF-8 temp path")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn build_example(dir: &TempDir) -> Output {
    let out = dir.path().join("out");
    codeai(&["build", EXAMPLE, "-o", out.to_str().unwrap()])
}

#[test]
fn build_writes_one_component_per_job_and_a_summary() {
    let dir = TempDir::new("build");
    let output = build_example(&dir);
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        text(&output.stderr)
    );

    let mut files: Vec<String> = std::fs::read_dir(dir.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut expected: Vec<String> = JOBS
        .iter()
        .map(|j| format!("{}.wasm", codeai_dsl::snake_case(j)))
        .collect();
    expected.sort();
    assert_eq!(files, expected);

    let lines: Vec<&str> = stdout.lines().collect();
    let header: Vec<&str> = lines[0]
        .split("  ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(
        header,
        ["JOB", "SCHEDULE", "TIMEZONE", "QUEUE", "SIZE", "BUILD TIME"],
        "{stdout}"
    );
    assert_eq!(lines.len(), 1 + JOBS.len() + 1, "{stdout}");
    for job in JOBS {
        let row = lines
            .iter()
            .find(|l| l.split_whitespace().next() == Some(job))
            .unwrap_or_else(|| panic!("no row for {job}:\n{stdout}"));
        assert!(row.contains(" KiB"), "{row}");
        assert!(row.trim_end().ends_with(" ms"), "{row}");
    }
    let daily = lines
        .iter()
        .find(|l| l.starts_with("DailySalesReport "))
        .unwrap();
    for cell in ["0 6 * * *", "America/New_York", "default"] {
        assert!(daily.contains(cell), "{daily}");
    }
    let sync = lines
        .iter()
        .find(|l| l.starts_with("SyncExternalInventory "))
        .unwrap();
    assert!(sync.contains("every 30m"), "{sync}");
    let last = lines.last().unwrap();
    assert!(last.starts_with("built 10 jobs in "), "{last}");
    assert!(
        last.ends_with(&format!("→ {}", dir.path().join("out").display())),
        "{last}"
    );
}

#[test]
fn generate_is_build() {
    let dir = TempDir::new("generate");
    let out = dir.path().join("gen");
    let output = codeai(&["generate", EXAMPLE, "-o", out.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 10);
}

#[test]
fn inspect_shows_the_manifest_and_the_interface() {
    let dir = TempDir::new("inspect");
    assert!(build_example(&dir).status.success());
    let wasm = dir.path().join("out/daily_sales_report.wasm");
    let output = codeai(&["inspect", wasm.to_str().unwrap()]);
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        text(&output.stderr)
    );
    for expected in [
        "job:          DailySalesReport",
        "schedule:     0 6 * * * (",
        "timezone:     America/New_York",
        "queue:        default",
        "timeout:      30m",
        "retry:        3 retries, exponential backoff",
        "source:       scheduled-jobs.codeai (job text sha256 ",
        "code:         the guest runtime of codeai ",
        "imports:",
        "codeai:host/calls@0.1.0: call-encoded",
        "exports:",
        "run: func(input: string) -> result<",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }

    let output = codeai(&["inspect", "--json", wasm.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let manifest: codeai_ir::Manifest =
        serde_json::from_slice(&output.stdout).expect("--json prints the manifest");
    assert_eq!(manifest.name, "DailySalesReport");
    assert_eq!(manifest.queue, "default");
}

#[test]
fn inspect_refuses_files_that_are_not_job_components() {
    let dir = TempDir::new("inspect-bad");
    let not_wasm = dir.path().join("notes.wasm");
    std::fs::write(&not_wasm, "hello").unwrap();
    // A valid but empty core module: WebAssembly, yet not a component.
    let module = dir.path().join("module.wasm");
    std::fs::write(&module, b"\0asm\x01\0\0\0").unwrap();
    // A valid but empty component: no manifest.
    let component = dir.path().join("component.wasm");
    std::fs::write(&component, b"\0asm\x0d\0\x01\0").unwrap();

    for (path, expected) in [
        (&not_wasm, "not a WebAssembly component"),
        (&module, "not a WebAssembly component"),
        (&component, "no `codeai-manifest` section"),
    ] {
        let output = codeai(&["inspect", path.to_str().unwrap()]);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("is not a job component"), "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
    }
    let output = codeai(&["inspect", dir.path().join("missing.wasm").to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("failed to read"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn check_accepts_the_example() {
    let output = codeai(&["check", EXAMPLE]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(text(&output.stdout).trim(), "ok: 10 jobs, no problems");
}

#[test]
fn check_points_at_errors_and_exits_1() {
    let dir = TempDir::new("check");
    let source = std::fs::read_to_string(EXAMPLE).unwrap();
    let broken = source.replacen(
        "select Product where quantity <= reorder_level",
        "select Prodcut where quantity <= reorder_level",
        1,
    );
    assert_ne!(
        broken, source,
        "the example changed; pick another line to break"
    );
    let path = dir.path().join("broken.codeai");
    std::fs::write(&path, &broken).unwrap();
    let line = broken
        .lines()
        .position(|l| l.contains("select Prodcut"))
        .unwrap()
        + 1;
    let col = broken
        .lines()
        .nth(line - 1)
        .unwrap()
        .find("Prodcut")
        .unwrap()
        + 1;

    let output = codeai(&["check", path.to_str().unwrap()]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}:{line}:{col}",
            dir.str().to_owned() + "/broken.codeai"
        )),
        "expected broken.codeai:{line}:{col} in:\n{stderr}"
    );
    assert!(stderr.contains("Prodcut"), "{stderr}");

    // The same as JSON for editors: the position, its end, the message and the hint.
    let output = codeai(&["check", path.to_str().unwrap(), "--format", "json"]);
    assert_eq!(output.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", text(&output.stdout)));
    assert_eq!(doc["ok"], false, "{doc}");
    assert_eq!(doc["errors"], 1, "{doc}");
    let d = &doc["diagnostics"][0];
    assert_eq!(d["file"], dir.str().to_owned() + "/broken.codeai", "{d}");
    assert_eq!(
        (d["line"].clone(), d["column"].clone()),
        (line.into(), col.into()),
        "{d}"
    );
    assert_eq!(d["end_line"], line, "{d}");
    assert_eq!(d["end_column"], col + "Prodcut".len(), "{d}");
    assert_eq!(d["severity"], "error", "{d}");
    assert!(d["message"].as_str().unwrap().contains("Prodcut"), "{d}");
    assert_eq!(d["hint"], "did you mean `Product`?", "{d}");
    let output = codeai(&["check", EXAMPLE, "--format", "json"]);
    assert!(output.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(doc["ok"], true, "{doc}");
    assert_eq!(doc["jobs"], 10, "{doc}");
    assert_eq!(doc["diagnostics"], serde_json::json!([]), "{doc}");
    // A file that is not there is a diagnostic of the same document, not text.
    let missing = dir.path().join("missing.codeai");
    let output = codeai(&["check", missing.to_str().unwrap(), "--format", "json"]);
    assert_eq!(output.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", text(&output.stdout)));
    assert_eq!(
        (doc["ok"].clone(), doc["errors"].clone()),
        (false.into(), 1.into()),
        "{doc}"
    );
    let d = &doc["diagnostics"][0];
    assert_eq!(d["severity"], "error", "{d}");
    assert!(
        d["message"].as_str().unwrap().contains("missing.codeai"),
        "{d}"
    );

    // `build` refuses the same file and writes nothing.
    let out = dir.path().join("out");
    let output = codeai(&["build", path.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains(&format!(":{line}:{col}")));
    assert!(!out.exists());
}

/// `codeai schedule next` with its arguments; returns (exit code, stdout lines, stderr).
fn schedule_next(args: &[&str]) -> (Option<i32>, Vec<String>, String) {
    let mut all = vec!["schedule", "next"];
    all.extend_from_slice(args);
    let output = codeai(&all);
    let lines = text(&output.stdout).lines().map(str::to_string).collect();
    (output.status.code(), lines, text(&output.stderr))
}

/// `codeai schedule next <expression> <args>` (split at spaces), which must succeed: the times
/// it prints.
fn fires(expression: &str, args: &str) -> Vec<String> {
    let all: Vec<&str> = std::iter::once(expression)
        .chain(args.split_whitespace())
        .collect();
    let (code, lines, stderr) = schedule_next(&all);
    assert_eq!(code, Some(0), "{stderr}");
    lines
}

#[test]
fn schedule_next_follows_the_spring_forward_gap() {
    // 2026-03-08: New York jumps from 02:00 EST to 03:00 EDT; 02:30 fires at the jump.
    let lines = fires(
        "30 2 * * *",
        "--tz America/New_York --after 2026-03-07T12:00:00Z -n 2",
    );
    assert_eq!(lines, ["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"]);
}

#[test]
fn schedule_next_fires_a_wildcard_hour_in_both_passes_of_fall_back() {
    // 2026-11-01: New York repeats 01:00-01:59 (EDT, then EST).
    let after = "--tz America/New_York --after 2026-11-01T04:00:00Z";
    let lines = fires("30 * * * *", &format!("{after} -n 4"));
    assert_eq!(
        lines,
        [
            "2026-11-01T04:30:00Z",
            "2026-11-01T05:30:00Z",
            "2026-11-01T06:30:00Z",
            "2026-11-01T07:30:00Z"
        ]
    );
    // A fixed-time job (minute and hour not starting with `*`) fires in the first pass only.
    let lines = fires("30 1 * * *", &format!("{after} -n 2"));
    assert_eq!(lines, ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"]);
}

#[test]
fn schedule_next_prints_n_times_after_now_by_default() {
    let after = "--after 2026-01-01T06:00:00+01:00";
    let lines = fires("0 6 * * *", after);
    assert_eq!(
        lines,
        [
            "2026-01-01T06:00:00Z",
            "2026-01-02T06:00:00Z",
            "2026-01-03T06:00:00Z",
            "2026-01-04T06:00:00Z",
            "2026-01-05T06:00:00Z"
        ]
    );
    let lines = fires("@daily", &format!("-n 3 {after}"));
    assert_eq!(
        lines,
        [
            "2026-01-02T00:00:00Z",
            "2026-01-03T00:00:00Z",
            "2026-01-04T00:00:00Z"
        ]
    );
    let lines = fires("every 90m", &format!("-n 2 {after}"));
    assert_eq!(lines, ["2026-01-01T06:00:00Z", "2026-01-01T07:30:00Z"]);

    // Without --after: five times, strictly increasing, all in the future.
    let before = chrono::Utc::now();
    let lines = fires("* * * * *", "");
    assert_eq!(lines.len(), 5, "{lines:?}");
    let times: Vec<chrono::DateTime<chrono::Utc>> = lines
        .iter()
        .map(|l| {
            assert!(l.ends_with(":00Z"), "{l}");
            chrono::DateTime::parse_from_rfc3339(l).unwrap().to_utc()
        })
        .collect();
    assert!(times[0] > before, "{lines:?}");
    assert!(times.windows(2).all(|w| w[0] < w[1]), "{lines:?}");
}

#[test]
fn schedule_next_rejects_bad_expressions_and_zones() {
    let (code, lines, stderr) = schedule_next(&["0 24 * * *"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(lines.is_empty());
    assert!(
        stderr.contains(
            "invalid cron expression: hour 24 is out of range 0-23\n  0 24 * * *\n    ^^\n"
        ),
        "{stderr}"
    );

    let (code, _, stderr) = schedule_next(&["0 0 6 * * *"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("expected 5 fields, found 6"), "{stderr}");

    let (code, _, stderr) = schedule_next(&["0 0 30 2 *"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("never fires"), "{stderr}");

    let (code, lines, stderr) = schedule_next(&["0 6 * * *", "--tz", "Europe/Pariss"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(lines.is_empty());
    assert!(
        stderr.contains("unknown timezone `Europe/Pariss`"),
        "{stderr}"
    );

    let (code, _, stderr) = schedule_next(&["every 5 minutes"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("invalid interval `5 minutes`"), "{stderr}");

    let (code, _, stderr) = schedule_next(&["0 6 * * *", "--after", "tomorrow"]);
    assert_ne!(code, Some(0), "{stderr}");
    assert!(stderr.contains("not an RFC 3339 date-time"), "{stderr}");
}

/// `codeai migrate up --demo` then `codeai exec` of example jobs against the seeded SQLite file:
/// the acceptance path of the host runtime, through the binary.
#[test]
fn exec_runs_example_jobs_against_the_seeded_database() {
    let dir = std::env::temp_dir().join(format!("codeai_cli_exec_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_codeai"))
            .args(args)
            .current_dir(&dir)
            .env("DATABASE_URL", "sqlite:demo.db")
            .env_remove("REDIS_URL")
            .env_remove("SMTP_HOST")
            .env_remove("SLACK_WEBHOOK")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code(), stdout, stderr)
    };
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/05-scheduled-jobs/scheduled-jobs.codeai"
    );
    let (code, _, err) = run(&["build", example, "-o", "out"]);
    assert_eq!(code, Some(0), "{err}");
    let (code, out, err) = run(&["migrate", "up", "--demo"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("5 expired"), "{out}");

    let (code, out, err) = run(&["exec", "out/cleanup_expired_sessions.wasm", "--json"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["status"], "completed");
    assert_eq!(
        v["database"], "sqlite:demo.db",
        "where the execution is recorded"
    );
    assert_eq!(v["log"][0]["message"], "Deleted 5 expired sessions");
    assert!(v["fuel_used"].as_u64().unwrap() > 0 && v["wall_time_ms"].as_f64().unwrap() > 0.0);

    let (code, out, err) = run(&["exec", "out/daily_sales_report.wasm"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("status     completed")
            && out.contains("recorded   in sqlite:demo.db")
            && out.contains("report.render")
            && out.contains("held in the outbox"),
        "{out}"
    );
    let reports: Vec<_> = std::fs::read_dir(dir.join(".codeai/reports/default"))
        .unwrap()
        .collect();
    assert_eq!(reports.len(), 1, "one PDF in the report store");

    // A job whose integration is not configured fails, with its reason, and exit code 1.
    let (code, out, err) = run(&["exec", "out/sync_external_inventory.wasm"]);
    assert_eq!(code, Some(1));
    assert!(out.contains("WAREHOUSE_API_URL"), "{out}");
    // Said once, in the report: not again as the executor's warning on stderr.
    assert!(!err.contains("WAREHOUSE_API_URL"), "{err}");

    // An integration on loopback is refused by the egress policy, which names the variable
    // that would allow it; a malformed allow list stops the command before anything runs.
    let exec_with = |vars: &[(&str, &str)]| {
        let out = Command::new(env!("CARGO_BIN_EXE_codeai"))
            .args(["exec", "out/sync_external_inventory.wasm", "--json"])
            .current_dir(&dir)
            .env("DATABASE_URL", "sqlite:demo.db")
            .env_remove("REDIS_URL")
            .env("WAREHOUSE_API_URL", "http://127.0.0.1:9")
            .env("WAREHOUSE_API_KEY", "k")
            .env_remove("CODEAI_OPERATOR_EGRESS_ALLOW")
            .envs(vars.iter().copied())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = exec_with(&[]);
    assert_eq!(code, Some(1), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let calls = v["calls"].as_array().unwrap();
    let call = calls.iter().find(|c| c["call"] == "http.call").unwrap();
    let error = call["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("`127.0.0.1` is a loopback address")
            && error.contains("CODEAI_OPERATOR_EGRESS_ALLOW=127.0.0.1/32"),
        "{out}"
    );
    let (code, _, err) = exec_with(&[("CODEAI_OPERATOR_EGRESS_ALLOW", "127.0.0.1/33")]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("CODEAI_OPERATOR_EGRESS_ALLOW=`127.0.0.1/33`: `127.0.0.1/33` is not a CIDR"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `codeai secret`: a value goes in on stdin and never comes out; the key file is made at first
/// need (mode 0600); `rotate-key` re-encrypts under `CODEAI_SECRET_KEY` with the old key in
/// `CODEAI_SECRET_KEY_OLD`, after which the old key is no longer needed and a job still reads
/// the value.
#[test]
fn secret_set_list_delete_and_rotate_key() {
    use std::io::{BufRead as _, Write as _};
    let dir = TempDir::new("secrets");
    let run = |args: &[&str], stdin: &str, env: &[(&str, &str)]| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_codeai"))
            .args(args)
            .current_dir(dir.path())
            .env("DATABASE_URL", "sqlite:secrets.db")
            .env_remove("REDIS_URL")
            .env_remove("CODEAI_SECRET_KEY")
            .env_remove("CODEAI_SECRET_KEY_OLD")
            .env_remove("CODEAI_SECRET_KEY_FILE")
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (out.status.code(), text(&out.stdout), text(&out.stderr))
    };
    let (code, _, err) = run(&["tenant", "create", "acme"], "", &[]);
    assert_eq!(code, Some(0), "{err}");

    let set = ["secret", "set", "--tenant", "acme", "API_TOKEN"];
    let (code, out, err) = run(&set, "first-value-1\n", &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.trim(), "secret API_TOKEN of tenant acme created");
    let key_file = dir.path().join(".codeai/secret.key");
    let old_key = std::fs::read_to_string(&key_file).unwrap();
    assert_eq!(old_key.trim().len(), 64, "32 bytes in hex");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let (code, out, _) = run(&set, "second-value-2\r\n", &[]);
    assert_eq!(code, Some(0));
    assert_eq!(out.trim(), "secret API_TOKEN of tenant acme replaced");
    let (code, _, err) = run(&["secret", "set", "--tenant", "acme", "1BAD"], "v", &[]);
    assert_eq!(code, Some(1));
    assert!(err.contains("`1BAD` is not a secret name"), "{err}");
    let (code, _, err) = run(&["secret", "set", "--tenant", "nobody", "X"], "v", &[]);
    assert_eq!(code, Some(1));
    assert!(err.contains("no tenant `nobody`"), "{err}");

    let (code, out, _) = run(&["secret", "list", "--tenant", "acme"], "", &[]);
    assert_eq!(code, Some(0));
    assert!(out.contains("API_TOKEN") && !out.contains("value"), "{out}");
    let (_, out, _) = run(&["secret", "list"], "", &[]);
    assert!(
        !out.contains("API_TOKEN"),
        "the operator's list is its own: {out}"
    );

    // Rotation: the new key in CODEAI_SECRET_KEY, the file's key as the old one.
    let new_key = "ab".repeat(32);
    let (code, out, err) = run(
        &["secret", "rotate-key"],
        "",
        &[
            ("CODEAI_SECRET_KEY", &new_key),
            ("CODEAI_SECRET_KEY_OLD", old_key.trim()),
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.starts_with("1 secrets re-encrypted under key "),
        "{out}"
    );
    let new_id = out["1 secrets re-encrypted under key ".len()..][..8].to_string();
    let (code, out, _) = run(
        &["secret", "rotate-key"],
        "",
        &[("CODEAI_SECRET_KEY", &new_key)],
    );
    assert_eq!(code, Some(0));
    assert!(
        out.starts_with("0 secrets re-encrypted") && out.contains("1 were under it"),
        "{out}"
    );
    let (code, _, err) = run(
        &["secret", "rotate-key"],
        "",
        &[("CODEAI_SECRET_KEY", &"cd".repeat(32))],
    );
    assert_eq!(code, Some(1));
    assert!(
        err.contains(&format!("encrypted with key `{new_id}`")),
        "{err}"
    );
    assert!(
        !err.contains("second-value") && !err.contains(&new_key),
        "{err}"
    );

    // A job of the tenant reads the value under the new key alone.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut socket, _) = listener.accept().unwrap();
        let mut head = String::new();
        let mut reader = std::io::BufReader::new(socket.try_clone().unwrap());
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line.trim().is_empty() {
                break;
            }
            head.push_str(&line);
        }
        socket
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}")
            .unwrap();
        head
    });
    std::fs::write(
        dir.path().join("token.codeai"),
        format!(
            "integration Api {{\n  base_url: \"http://127.0.0.1:{port}\"\n  \
             auth: bearer(env(\"API_TOKEN\"))\n  ping: GET \"/ping\" {{}}\n}}\n\
             job SendToken {{\n  steps {{ p {{ call: Api.ping {{}} }} }}\n}}\n"
        ),
    )
    .unwrap();
    let (code, _, err) = run(&["build", "token.codeai", "-o", "out"], "", &[]);
    assert_eq!(code, Some(0), "{err}");
    let (code, out, err) = run(
        &["exec", "out/send_token.wasm", "--tenant", "acme", "--json"],
        "",
        &[
            ("CODEAI_SECRET_KEY", &new_key),
            // The tenant's job calls the test's server on loopback.
            ("CODEAI_EGRESS_ALLOW", "127.0.0.1/32"),
        ],
    );
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(!out.contains("second-value"), "{out}");
    let head = server.join().unwrap().to_ascii_lowercase();
    assert!(
        head.contains("authorization: bearer second-value-2\r\n"),
        "{head}"
    );

    let delete = ["secret", "delete", "--tenant", "acme", "API_TOKEN"];
    let (code, out, _) = run(&delete, "", &[]);
    assert_eq!(code, Some(0));
    assert_eq!(out.trim(), "secret API_TOKEN of tenant acme deleted");
    let (code, _, err) = run(&delete, "", &[]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("tenant `acme` has no secret `API_TOKEN`"),
        "{err}"
    );
}

/// A `codeai bench` run's results, `key=value` lines, as a map, what it said on stderr, and
/// the name its scratch (folder, file, schema, key prefix) starts with: `codeai_bench_{pid}_`.
fn bench(
    args: &[&str],
    env: &[(&str, &str)],
) -> (std::collections::BTreeMap<String, String>, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_codeai"));
    command.arg("bench").args(args);
    command.env_remove("DATABASE_URL").env_remove("REDIS_URL");
    for (k, v) in env {
        command.env(k, v);
    }
    let child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let scratch = format!("codeai_bench_{}_", child.id());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let results = text(&out.stdout)
        .lines()
        .map(|l| {
            let (k, v) = l
                .split_once('=')
                .unwrap_or_else(|| panic!("not key=value: {l}"));
            (k.to_string(), v.to_string())
        })
        .collect();
    (results, text(&out.stderr), scratch)
}

const THROUGHPUT: [&str; 5] = ["throughput", "--jobs", "40", "--concurrency", "3"];

/// Checks what every bench run prints about itself (which bench, the backend, the jobs and
/// concurrency it was given: `args`) and reads its figures as numbers.
fn figures<'r>(
    r: &'r std::collections::BTreeMap<String, String>,
    args: &[&str; 5],
    backend: &str,
) -> impl Fn(&str) -> f64 + 'r {
    assert_eq!(r["bench"], args[0]);
    assert_eq!(r["backend"], backend);
    assert_eq!(
        (r["jobs"].as_str(), r["concurrency"].as_str()),
        (args[2], args[4])
    );
    move |k: &str| r[k].parse().unwrap_or_else(|_| panic!("{k}={}", r[k]))
}

/// The figures a throughput run prints, each a number where it should be.
fn assert_throughput_shape(r: &std::collections::BTreeMap<String, String>, backend: &str) {
    let number = figures(r, &THROUGHPUT, backend);
    assert!(number("jobs_per_second") > 0.0);
    assert!(number("seconds") > 0.0);
    assert!(number("queue_wait_p50_ms") <= number("queue_wait_p99_ms"));
    assert!(number("execution_p50_ms") <= number("execution_p99_ms"));
}

/// Both benches on SQLite: each works in a scratch file beside `DATABASE_URL`'s and removes it.
#[test]
fn benches_run_on_a_scratch_sqlite_file_they_remove() {
    let dir = TempDir::new("bench");
    let url = format!("sqlite:{}/codeai.db", dir.str());
    let (r, said, _) = bench(&THROUGHPUT, &[("DATABASE_URL", &url)]);
    assert!(said.contains("running them on 3 worker slots"), "{said}");
    assert_throughput_shape(&r, "sqlite");
    assert!(!r.contains_key("redis_cpu_us_per_job"), "no Redis: {r:?}");
    let (r, said, _) = bench(&FIRE, &[("DATABASE_URL", &url)]);
    assert!(said.contains("30 jobs due at"), "{said}");
    assert_fire_shape(&r, "sqlite");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn bench_throughput_on_postgres_and_redis_leaves_no_schema_and_no_key() {
    let redis_url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some((pg, admin)) = postgres(&rt) else {
        return;
    };
    let (r, _, throughput) = bench(
        &THROUGHPUT,
        &[("DATABASE_URL", &pg), ("REDIS_URL", &redis_url)],
    );
    assert_throughput_shape(&r, "postgres+redis");
    // On Redis it also reports what Redis did per job: every job's lease and finish are at
    // least one command of a script each, and take some of Redis's CPU.
    let number = figures(&r, &THROUGHPUT, "postgres+redis");
    assert!(number("redis_commands_per_job") >= 2.0, "{r:?}");
    assert!(number("redis_cpu_us_per_job") > 0.0, "{r:?}");
    let (r, _, fire) = bench(&FIRE, &[("DATABASE_URL", &pg), ("REDIS_URL", &redis_url)]);
    assert_fire_shape(&r, "postgres+redis");
    // Only these runs' own: other tests may run benches on the same servers meanwhile.
    for scratch in [throughput, fire] {
        assert_eq!(
            schemas(&rt, &admin, &scratch),
            0,
            "the bench's schema is dropped"
        );
        let keys: Vec<String> = rt.block_on(async {
            let client = redis::Client::open(redis_url.as_str()).unwrap();
            let mut con = client.get_multiplexed_async_connection().await.unwrap();
            redis::cmd("KEYS")
                .arg(format!("{scratch}*"))
                .query_async(&mut con)
                .await
                .unwrap()
        });
        assert!(keys.is_empty(), "keys left behind: {keys:?}");
    }
}

/// A bench that fails after it made its scratch (here: Redis does not answer, after the
/// database was made and migrated) says why and removes the scratch, as a run's end does: no
/// file beside `DATABASE_URL`'s, no folder in the temp dir, no schema on PostgreSQL.
#[test]
fn a_bench_that_cannot_reach_redis_says_so_and_leaves_nothing_behind() {
    let nowhere = "redis://127.0.0.1:1";
    let temp = TempDir::new("bench-fails-tmp");
    let fails = |database: &str| {
        let child = Command::new(env!("CARGO_BIN_EXE_codeai"))
            .args(["bench", "throughput", "--jobs", "10"])
            .env("DATABASE_URL", database)
            .env("REDIS_URL", nowhere)
            .env("TMPDIR", temp.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let out = child.wait_with_output().unwrap();
        let err = text(&out.stderr);
        assert!(!out.status.success(), "{err}");
        assert!(
            err.contains(&format!("failed to connect to `{nowhere}`")),
            "{err}"
        );
        let left: Vec<_> = std::fs::read_dir(temp.path()).unwrap().collect();
        assert!(left.is_empty(), "left behind in its temp dir: {left:?}");
        format!("codeai_bench_{pid}_")
    };
    let dir = TempDir::new("bench-fails");
    fails(&format!("sqlite:{}/codeai.db", dir.str()));
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");

    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some((pg, admin)) = postgres(&rt) else {
        return;
    };
    let scratch = fails(&pg);
    assert_eq!(
        schemas(&rt, &admin, &scratch),
        0,
        "the bench's schema is dropped"
    );
}

/// The PostgreSQL the bench tests use and a pool on it; none where it is not reachable outside
/// CI (in CI that fails the test).
fn postgres(rt: &tokio::runtime::Runtime) -> Option<(String, sqlx::PgPool)> {
    let pg = std::env::var("DATABASE_URL_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    match rt.block_on(sqlx::PgPool::connect(&pg)) {
        Ok(admin) => Some((pg, admin)),
        Err(e) => {
            assert!(
                std::env::var("CI").is_err(),
                "PostgreSQL is not reachable at {pg}: {e}"
            );
            None
        }
    }
}

/// How many schemas' names start with `prefix`.
fn schemas(rt: &tokio::runtime::Runtime, admin: &sqlx::PgPool, prefix: &str) -> i64 {
    rt.block_on(
        sqlx::query_scalar("SELECT COUNT(*) FROM pg_namespace WHERE starts_with(nspname, $1)")
            .bind(prefix)
            .fetch_one(admin),
    )
    .unwrap()
}

const FIRE: [&str; 5] = ["fire", "--jobs", "30", "--concurrency", "3"];

/// The figures a fire run prints: lateness after the instant, never before it, no task leasable
/// before the last was enqueued, and no task started before it was leasable.
fn assert_fire_shape(r: &std::collections::BTreeMap<String, String>, backend: &str) {
    let number = figures(r, &FIRE, backend);
    for kind in ["leasable", "started"] {
        let (p50, p99, max) = (
            number(&format!("{kind}_p50_ms")),
            number(&format!("{kind}_p99_ms")),
            number(&format!("{kind}_max_ms")),
        );
        assert!(0.0 <= p50 && p50 <= p99 && p99 <= max, "{kind}: {r:?}");
    }
    // A task is leasable once it is in the queue: never before the last one was enqueued.
    assert!(
        number("last_enqueued_ms") <= number("leasable_max_ms"),
        "{r:?}"
    );
    // Each task started after it was leasable, so every quantile is at least as late.
    for q in ["p50", "p99", "max"] {
        assert!(
            number(&format!("started_{q}_ms")) >= number(&format!("leasable_{q}_ms")),
            "{q}: {r:?}"
        );
    }
}

/// `codeai fmt`: the examples are in the canonical layout (`--check` passes and changes
/// nothing); a file that is not is listed by `--check`, rewritten by `fmt`, its comments kept,
/// and then passes; a file that does not parse is left as it was.
#[test]
fn fmt_rewrites_a_file_into_the_canonical_layout_and_check_says_which_differ() {
    let saas = EXAMPLE.replace("05-scheduled-jobs/scheduled-jobs", "06-saas-jobs/saas-jobs");
    let output = codeai(&["fmt", "--check", EXAMPLE, &saas]);
    assert!(output.status.success(), "{}", text(&output.stdout));
    assert_eq!(text(&output.stdout), "");

    let dir = TempDir::new("fmt");
    let path = dir.path().join("messy.codeai");
    let messy = "// Keep me.\njob   Tidy{\nschedule:every 1h\n  steps {\n\n\n      say{log:\"hi\"}   // and me\n}}\n";
    std::fs::write(&path, messy).unwrap();
    let file = path.to_str().unwrap();

    let output = codeai(&["fmt", "--check", file]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(text(&output.stdout).trim(), file);
    assert!(text(&output.stderr).contains("1 file is not in the canonical layout"));
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        messy,
        "--check writes nothing"
    );

    let output = codeai(&["fmt", file]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "// Keep me.\njob Tidy {\n    schedule: every 1h\n    steps {\n        say { log: \"hi\" } // and me\n    }\n}\n"
    );
    assert!(codeai(&["fmt", "--check", file]).status.success());

    let broken = dir.path().join("broken.codeai");
    std::fs::write(&broken, "job A {\n  steps {\n").unwrap();
    let output = codeai(&["fmt", broken.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("does not parse"),
        "{}",
        text(&output.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&broken).unwrap(),
        "job A {\n  steps {\n"
    );
}

/// A command whose reader goes away (`codeai schedule next … | head -1`) ends quietly, as
/// Unix tools do: no panic message about a broken pipe.
#[test]
fn a_closed_pipe_ends_a_printing_command_quietly() {
    use std::io::Read as _;
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_codeai"))
        .args(["schedule", "next", "* * * * *", "-n", "100000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read one line, then close the pipe while it still has thousands to print.
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 64];
    let n = stdout.read(&mut first).unwrap();
    assert!(n > 0);
    drop(stdout);
    let output = child.wait_with_output().unwrap();
    let stderr = text(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("Broken pipe"), "{stderr}");
}
