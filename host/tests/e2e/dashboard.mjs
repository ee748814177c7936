// The dashboard driven in headless Chromium (Debian's `chromium` through playwright-core).
//
// Run by host/tests/dashboard.rs against `codeai host run` on the example, which passes:
//   BASE_URL        the host, e.g. http://127.0.0.1:8080
//   ADMIN_TOKEN     the admin token
//   TENANT_TOKEN    a token of tenant TENANT, which owns one job, TENANT_JOB
//   ARTIFACTS       where screenshots and the downloaded report go
//   CHROMIUM        the browser (default /usr/bin/chromium)
// The host's WarehouseAPI points at a server that never answers, so SyncExternalInventory runs
// until it is cancelled.
//
// Every step prints a line; the first failure exits 1 with what went wrong.

import { chromium } from "playwright-core";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createRequire } from "node:module";

const AXE = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const BASE = env("BASE_URL");
const ADMIN = env("ADMIN_TOKEN");
const TENANT = env("TENANT");
const TENANT_TOKEN = env("TENANT_TOKEN");
const TENANT_JOB = env("TENANT_JOB");
const ARTIFACTS = env("ARTIFACTS");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const TIMEOUT = 60_000;

mkdirSync(ARTIFACTS, { recursive: true });

const problems = [];
let step = "start";

function log(message) {
  console.log(`[dashboard e2e] ${message}`);
}

function check(condition, message) {
  if (!condition) throw new Error(`${step}: ${message}`);
}

/** The API straight from Node, to check what the dashboard did. */
async function api(token, method, path, body) {
  const r = await fetch(BASE + path, {
    method,
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}

/** Records console errors, page errors, failed requests and HTTP errors of a page. */
function watch(page, label) {
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`${label} console error during "${step}": ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`${label} page error during "${step}": ${e.message}`));
  page.on("requestfailed", (r) => {
    // A download is handed to the download manager: Chromium reports its navigation as aborted.
    if (r.failure()?.errorText === "net::ERR_ABORTED" && r.url().includes("/files/reports/")) return;
    problems.push(`${label} request failed during "${step}": ${r.method()} ${r.url()} ${r.failure()?.errorText}`);
  });
  page.on("response", (r) => {
    if (r.status() >= 400) problems.push(`${label} HTTP ${r.status()} during "${step}": ${r.request().method()} ${r.url()}`);
  });
}

async function shot(page, name, fullPage = true) {
  const path = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path, fullPage });
  log(`screenshot ${path}`);
}

/**
 * Audits the page with axe-core (WCAG 2 A/AA rules): a serious or critical violation is a
 * problem. axe is put in through DevTools (the page's own policy allows no foreign script).
 */
async function audit(page, name) {
  const hasAxe = await page.evaluate(() => typeof window.axe !== "undefined");
  if (!hasAxe) await page.evaluate(AXE);
  const result = await page.evaluate(() =>
    window.axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] }, resultTypes: ["violations"] }),
  );
  const serious = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  writeFileSync(join(ARTIFACTS, `${name}.axe.json`), JSON.stringify(result.violations, null, 2));
  for (const v of serious) {
    const where = v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join("; ");
    problems.push(`accessibility (${name}): ${v.id} [${v.impact}] ${v.help} at ${where}`);
  }
  log(`axe ${name}: ${result.violations.length} violation(s), ${serious.length} serious or critical`);
}

async function signIn(page, token) {
  await page.goto(BASE + "/");
  check(page.url().endsWith("/ui/") || page.url().includes("/ui/#"), `/ redirects to the dashboard, got ${page.url()}`);
  await page.getByLabel("API token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Overview" }).waitFor({ timeout: TIMEOUT });
}

/** Opens a page of the navigation and waits for its heading. */
async function goTo(page, name) {
  await page.getByRole("link", { name, exact: true }).click();
  await page.getByRole("heading", { name }).waitFor();
}

/**
 * Submits a view's filters with `button` and waits for the view they open: the URL changes first,
 * and the view before (whose rows may pass for the filtered ones) stays until the hash is routed.
 */
async function submitFilters(page, button, url) {
  const before = await page.locator("section.view").elementHandle();
  await page.getByRole("button", { name: button }).click();
  await page.waitForURL(url);
  await page.waitForFunction((el) => !el.isConnected, before);
}

/** The `attr` of each row `selector` finds, once the view shows rows. */
async function rowsOf(page, selector, attr) {
  await page.locator(selector).first().waitFor();
  return page.locator(selector).evaluateAll((rows, attr) => rows.map((r) => r.dataset[attr]), attr);
}

/** The row of a job in the jobs table. */
const jobRow = (page, name) => page.locator(`tr[data-job="${name}"]`);

async function waitForStatus(page, status) {
  await page.locator(`#execution-status [data-status="${status}"]`).waitFor({ timeout: TIMEOUT });
}

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});

try {
  const admin = await browser.newContext({
    viewport: { width: 1366, height: 800 },
    acceptDownloads: true,
    timezoneId: "Europe/Berlin",
    locale: "en-GB",
  });
  const page = await admin.newPage();
  page.setDefaultTimeout(TIMEOUT);
  watch(page, "admin");

  // --- Sign in -----------------------------------------------------------------------------
  step = "sign in page";
  await page.goto(BASE + "/");
  await page.getByLabel("API token").waitFor();
  check(!(await page.getByRole("navigation", { name: "Main" }).isVisible()), "no navigation before signing in");
  check((await page.locator("#token-help").textContent()).includes("codeai host run"), "the sign-in help names the banner's admin token");
  await shot(page, "01-sign-in");
  await audit(page, "sign-in");
  step = "sign in as admin";
  await page.getByLabel("API token").fill(ADMIN);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Overview" }).waitFor();
  check((await page.locator("#who").textContent()) === "admin", "the header says admin");
  log("signed in as admin");

  // --- Overview ----------------------------------------------------------------------------
  step = "overview";
  await page.locator("#queues").waitFor();
  await page.locator("#throughput svg").waitFor();
  await page.locator("#workers-total").waitFor();
  const slots = Number(await page.locator("#workers-total").textContent());
  check(slots > 0, `worker slots shown (${slots})`);
  await shot(page, "02-overview");
  await audit(page, "overview");

  // --- Jobs: the ten of the example ---------------------------------------------------------
  step = "jobs list";
  await goTo(page, "Jobs");
  await page.locator("tr[data-job]").nth(9).waitFor();
  const names = await page.locator("tr[data-job]").evaluateAll((rows) => rows.map((r) => r.dataset.job));
  const example = [
    "DailySalesReport", "WeeklyInventoryReport", "MonthlyBusinessSummary", "CleanupExpiredSessions",
    "CleanupJobExecutions", "CleanupExpiredReports", "DatabaseMaintenance", "SyncExternalInventory",
    "ProcessPendingWebhooks", "LowStockAlert",
  ];
  for (const name of example) check(names.includes(name), `${name} is listed (got ${names.join(", ")})`);
  check(names.includes(TENANT_JOB), `the admin also sees ${TENANT}'s job`);
  const daily = jobRow(page, "DailySalesReport");
  const dailyText = await daily.textContent();
  check(dailyText.includes("0 6 * * *"), "DailySalesReport shows its cron expression");
  check(/06:00/.test(dailyText), `DailySalesReport's schedule in words mentions 06:00: ${dailyText}`);
  // Its next run in the viewer's zone (the browser says Europe/Berlin) and in the job's.
  const dailyJob = (await api(ADMIN, "GET", "/jobs/DailySalesReport")).body;
  const nextRun = new Date(dailyJob.next_run_at);
  const hhmm = (timeZone) => new Intl.DateTimeFormat("en-GB", { timeZone, hour: "2-digit", minute: "2-digit" }).format(nextRun);
  const nextCell = await daily.locator("td[data-label='Next run']").textContent();
  check(nextCell.includes(hhmm("Europe/Berlin")), `next run in the viewer's time ${hhmm("Europe/Berlin")}: ${nextCell}`);
  check(nextCell.includes(`${hhmm("America/New_York")}`) && nextCell.includes("America/New_York"), `next run in the job's time ${hhmm("America/New_York")} America/New_York: ${nextCell}`);
  await shot(page, "03-jobs");
  await audit(page, "jobs");

  // --- Pause and resume ----------------------------------------------------------------------
  step = "pause";
  const cleanup = jobRow(page, "CleanupExpiredSessions");
  await cleanup.getByRole("button", { name: "Pause" }).click();
  await cleanup.getByRole("button", { name: "Resume" }).waitFor();
  await cleanup.locator('[data-status="paused"]').waitFor();
  let job = await api(ADMIN, "GET", "/jobs/CleanupExpiredSessions");
  check(job.body.is_enabled === false, "the API says the job is paused");
  step = "resume";
  await cleanup.getByRole("button", { name: "Resume" }).click();
  await cleanup.getByRole("button", { name: "Pause" }).waitFor();
  job = await api(ADMIN, "GET", "/jobs/CleanupExpiredSessions");
  check(job.body.is_enabled === true && job.body.next_run_at, "the API says the job runs again, with a next run");
  log("paused and resumed CleanupExpiredSessions");

  // --- Keyboard: reach "Run now" with Tab, open the dialog with Enter, close it with Escape ---
  step = "keyboard";
  await page.locator("main").focus();
  let reached = false;
  for (let i = 0; i < 60 && !reached; i++) {
    await page.keyboard.press("Tab");
    reached = await page.evaluate(() => document.activeElement?.dataset?.action === "run");
  }
  check(reached, "a Run now button is reachable with Tab");
  await page.keyboard.press("Enter");
  await page.locator("dialog[open]").waitFor();
  check(await page.evaluate(() => document.activeElement?.id === "run-input"), "the dialog puts the focus on its input");
  await page.keyboard.press("Escape");
  await page.locator("dialog[open]").waitFor({ state: "detached" });
  log("keyboard: Tab → Run now → Enter opens the dialog, Escape closes it");

  // --- Edit a schedule with the live preview ---------------------------------------------------
  step = "edit schedule";
  const low = jobRow(page, "LowStockAlert");
  await low.getByRole("button", { name: "Edit schedule" }).click();
  const dialog = page.locator("dialog[open]");
  await dialog.getByLabel("Cron expression").fill("0 7 * * 1-5");
  await dialog.getByLabel("Timezone").fill("America/Los_Angeles");
  await dialog.locator("#preview li").nth(4).waitFor();
  await page.waitForFunction(() => document.querySelector("#preview")?.textContent.includes("America/Los_Angeles"));
  const preview = await dialog.locator("#preview").textContent();
  check(/07:00/.test(preview), `the preview shows 07:00 in the job's zone: ${preview}`);
  await shot(page, "04-edit-schedule", false);
  await audit(page, "schedule-dialog");
  await dialog.getByLabel("Cron expression").fill("61 * * * *");
  await dialog.locator("#preview .error").waitFor();
  await dialog.getByLabel("Cron expression").fill("0 7 * * 1-5");
  await dialog.locator("#preview li").nth(4).waitFor();
  await dialog.getByRole("button", { name: "Save schedule" }).click();
  await dialog.waitFor({ state: "detached" });
  job = await api(ADMIN, "GET", "/jobs/LowStockAlert");
  check(job.body.cron_expression === "0 7 * * 1-5", `saved cron: ${job.body.cron_expression}`);
  check(job.body.timezone === "America/Los_Angeles", `saved zone: ${job.body.timezone}`);
  const next = new Date(job.body.next_run_at);
  const localHour = new Intl.DateTimeFormat("en-US", { timeZone: "America/Los_Angeles", hour: "2-digit", hour12: false }).format(next);
  check(localHour === "07", `next run at 07 in Los Angeles, got ${localHour}`);
  log("rescheduled LowStockAlert to 07:00 on weekdays in Los Angeles");

  // --- Run now and watch the execution reach completed ------------------------------------------
  step = "run now";
  await daily.getByRole("button", { name: "Run now" }).click();
  await page.locator("dialog[open] textarea").fill('{"start_date": "2026-01-01", "end_date": "2026-01-12"}');
  await page.locator("dialog[open]").getByRole("button", { name: "Run" }).click();
  await page.waitForURL(/#\/executions\//);
  const executionId = decodeURIComponent(page.url().split("#/executions/")[1]);
  log(`run queued: execution ${executionId}`);
  step = "execution completes";
  await waitForStatus(page, "completed");
  await page.locator("#execution table tbody tr").first().waitFor();
  const detail = await page.locator("#execution").textContent();
  check(detail.includes("2026-01-12"), "the detail shows the input");
  const calls = await page.locator("#execution table tbody tr").count();
  check(calls >= 2, `capability calls listed with timings (${calls})`);
  check(await page.getByRole("button", { name: "Cancel" }).isDisabled(), "a completed execution cannot be cancelled");
  await shot(page, "05-execution-completed");
  await audit(page, "execution");
  log("execution completed; detail shows calls, log, input, output");

  // --- The job's executions, filtered by status -------------------------------------------------
  step = "job executions";
  await page.getByRole("link", { name: "DailySalesReport" }).first().click();
  await page.getByRole("heading", { name: /DailySalesReport/ }).waitFor();
  await page.locator(`tr[data-execution="${executionId}"]`).waitFor();
  await page.getByLabel("Show executions with status").selectOption("completed");
  await page.waitForURL(/status=completed/);
  await page.locator(`tr[data-execution="${executionId}"]`).waitFor();
  await page.getByLabel("Show executions with status").selectOption("failed");
  await page.waitForURL(/status=failed/);
  await page.getByText("No failed execution.").waitFor();
  await page.getByLabel("Show executions with status").selectOption("");
  await page.locator(`tr[data-execution="${executionId}"]`).waitFor();
  await shot(page, "06-job-executions");
  await audit(page, "job");
  log("executions of DailySalesReport, filtered by status");

  // --- Reports: download the PDF the run made ---------------------------------------------------
  step = "reports";
  await goTo(page, "Reports");
  const reportRow = page.locator("tr[data-report]").first();
  await reportRow.waitFor();
  await shot(page, "07-reports");
  await audit(page, "reports");
  step = "download";
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    reportRow.getByRole("button", { name: "Download" }).click(),
  ]);
  const saved = join(ARTIFACTS, "report.pdf");
  await download.saveAs(saved);
  const pdf = readFileSync(saved);
  check(pdf.subarray(0, 5).toString() === "%PDF-", "the download is a PDF");
  log(`downloaded ${download.suggestedFilename()} (${pdf.length} bytes)`);

  // --- Outbox -------------------------------------------------------------------------------------
  step = "outbox";
  await goTo(page, "Outbox");
  await page.locator("#outbox li").first().waitFor();
  await page.locator("#outbox summary").first().click();
  await shot(page, "08-outbox");
  await audit(page, "outbox");
  log("the report's mail is held in the outbox");

  // --- Events: the run's JobCompleted, and the filters ---------------------------------------------
  step = "events";
  await goTo(page, "Events");
  await page.locator('tr[data-type="JobCompleted"]').first().waitFor();
  await shot(page, "08-events");
  await audit(page, "events");
  step = "events filter";
  await page.locator("#event-type").fill("JobCompleted");
  await page.locator("#event-job").fill("DailySalesReport");
  await submitFilters(page, "Filter", /#\/events\?type=JobCompleted&job=DailySalesReport$/);
  const types = await rowsOf(page, "tr[data-event]", "type");
  check(types.length > 0 && types.every((t) => t === "JobCompleted"), `only JobCompleted events: ${types.join(", ")}`);
  await page.locator("#event-type").fill("NoSuchEvent");
  await submitFilters(page, "Filter", /#\/events\?type=NoSuchEvent&job=DailySalesReport$/);
  await page.getByText("No event matches these filters.").waitFor();
  log("the run's JobCompleted event is on the Events page, and the filters narrow it");

  // --- Cancel a long-running execution -------------------------------------------------------------
  step = "run the long job";
  await goTo(page, "Jobs");
  await jobRow(page, "SyncExternalInventory").getByRole("button", { name: "Run now" }).click();
  await page.locator("dialog[open]").getByRole("button", { name: "Run" }).click();
  await page.waitForURL(/#\/executions\//);
  const longId = decodeURIComponent(page.url().split("#/executions/")[1]);
  await waitForStatus(page, "running");
  await shot(page, "09-execution-running");
  step = "cancel";
  await page.getByRole("button", { name: "Cancel" }).click();
  await waitForStatus(page, "cancelled");
  const cancelled = await api(ADMIN, "GET", `/executions/${longId}`);
  check(cancelled.body.status === "cancelled", `the API says cancelled: ${cancelled.body.status}`);
  check(!(await page.getByRole("button", { name: "Retry" }).isDisabled()), "a cancelled execution can be retried");
  await shot(page, "10-execution-cancelled");
  log("cancelled a running SyncExternalInventory");

  // --- Executions: search, retry what the search found, then cancel it ------------------------------
  step = "executions search";
  await goTo(page, "Executions");
  await page.locator("#exec-job").fill("SyncExternalInventory");
  await page.locator("#exec-status").selectOption("cancelled");
  await submitFilters(page, "Search", /#\/executions\?job=SyncExternalInventory&status=cancelled$/);
  const shown = await rowsOf(page, "tr[data-execution]", "status");
  check(shown.length > 0 && (await page.locator(`tr[data-execution="${longId}"]`).count()) === 1, "the cancelled run is found");
  check(shown.length > 0 && shown.every((s) => s === "cancelled"), `only cancelled executions: ${shown.join(", ")}`);
  await audit(page, "executions");
  step = "bulk retry";
  await page.getByRole("button", { name: "Retry matching…" }).click();
  await page.locator("dialog[open]").getByRole("button", { name: "Retry executions" }).click();
  await page.getByText(/^Retry: 1 of 1$/).waitFor();
  const retried = await api(ADMIN, "GET", `/executions/${longId}`);
  check(["pending", "running"].includes(retried.body.status), `retried: ${retried.body.status}`);
  step = "bulk cancel";
  await page.locator("#exec-status").selectOption("");
  await submitFilters(page, "Search", /#\/executions\?job=SyncExternalInventory$/);
  await page.getByRole("button", { name: "Cancel matching…" }).click();
  await shot(page, "10-executions-bulk-cancel");
  await page.locator("dialog[open]").getByRole("button", { name: "Cancel executions" }).click();
  // Every unfinished run of the job: the retried one, and a fire of its schedule (`every 30m`, on
  // the clock's half hours) if one came during the test. The retried run's own status is checked below.
  await page.getByText(/^Cancel: (\d+) of \1$/).waitFor();
  await page.waitForFunction(
    async ([token, id]) => {
      const r = await fetch(`/executions/${id}`, { headers: { Authorization: `Bearer ${token}` } });
      return (await r.json()).status === "cancelled";
    },
    [ADMIN, longId],
  );
  log("found the cancelled run on the Executions page, retried it and cancelled it again in bulk");

  // --- Overview again: the throughput chart counts the runs ------------------------------------------
  step = "overview after runs";
  await page.getByRole("link", { name: "Overview", exact: true }).click();
  await page.waitForFunction(() => (document.querySelector("#throughput svg")?.getAttribute("aria-label") || "").match(/^[1-9]\d* executions finished/));
  await shot(page, "11-overview-after-runs");

  // --- A phone ----------------------------------------------------------------------------------------
  step = "phone";
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  const mobile = await phone.newPage();
  mobile.setDefaultTimeout(TIMEOUT);
  watch(mobile, "phone");
  await signIn(mobile, ADMIN);
  await goTo(mobile, "Jobs");
  await mobile.locator("tr[data-job]").nth(9).waitFor();
  const overflow = await mobile.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, `the page fits the phone's width (overflows by ${overflow}px); tables scroll in their box`);
  await shot(mobile, "12-phone-jobs");
  await audit(mobile, "phone-jobs");
  await mobile.goto(`${BASE}/ui/#/executions/${encodeURIComponent(executionId)}`);
  await waitForStatus(mobile, "completed");
  await shot(mobile, "13-phone-execution");
  await phone.close();

  // --- Dark mode (from the system's setting) ----------------------------------------------------------
  step = "dark";
  const dark = await browser.newContext({ viewport: { width: 1366, height: 800 }, colorScheme: "dark" });
  const night = await dark.newPage();
  night.setDefaultTimeout(TIMEOUT);
  watch(night, "dark");
  await signIn(night, ADMIN);
  await night.locator("#throughput svg").waitFor();
  await audit(night, "dark-overview");
  await night.goto(`${BASE}/ui/#/executions/${encodeURIComponent(executionId)}`);
  await waitForStatus(night, "completed");
  await audit(night, "dark-execution");
  await shot(night, "15-dark-execution");
  await dark.close();

  // --- A tenant's token sees only its own jobs ----------------------------------------------------------
  step = "tenant";
  const tenantContext = await browser.newContext({ viewport: { width: 1366, height: 800 } });
  const tenantPage = await tenantContext.newPage();
  tenantPage.setDefaultTimeout(TIMEOUT);
  watch(tenantPage, "tenant");
  await signIn(tenantPage, TENANT_TOKEN);
  check((await tenantPage.locator("#who").textContent()) === `tenant ${TENANT}`, "the header names the tenant");
  await goTo(tenantPage, "Jobs");
  await tenantPage.locator(`tr[data-job="${TENANT_JOB}"]`).waitFor();
  const tenantJobs = await tenantPage.locator("tr[data-job]").evaluateAll((rows) => rows.map((r) => r.dataset.job));
  check(tenantJobs.length === 1 && tenantJobs[0] === TENANT_JOB, `the tenant sees only ${TENANT_JOB}: ${tenantJobs.join(", ")}`);
  check(!(await tenantPage.locator("thead").textContent()).includes("Tenant"), "no tenant column for a tenant");
  await shot(tenantPage, "14-tenant-jobs");
  await goTo(tenantPage, "Reports");
  await tenantPage.getByText("No report yet.").waitFor();
  await goTo(tenantPage, "Events");
  await tenantPage.getByText("No event yet.").waitFor();
  step = "tenant sign out";
  await tenantPage.getByRole("button", { name: "Sign out" }).click();
  await tenantPage.getByLabel("API token").waitFor();
  await tenantContext.close();
  log(`tenant ${TENANT} sees only ${TENANT_JOB}`);

  // --- A wrong token is refused on the sign-in form ------------------------------------------------------
  step = "wrong token";
  const wrong = await browser.newContext();
  const wrongPage = await wrong.newPage();
  wrongPage.setDefaultTimeout(TIMEOUT);
  await wrongPage.goto(BASE + "/ui/");
  await wrongPage.getByLabel("API token").fill("cai_not_a_token");
  await wrongPage.getByRole("button", { name: "Sign in" }).click();
  await wrongPage.getByText("This token is not valid.").waitFor();
  await wrong.close();

  await admin.close();
} catch (e) {
  problems.unshift(`FAILED at "${step}": ${e.message}`);
} finally {
  await browser.close();
}

writeFileSync(join(ARTIFACTS, "problems.txt"), problems.join("\n") + "\n");
if (problems.length) {
  for (const p of problems) console.error(`[dashboard e2e] ${p}`);
  process.exit(1);
}
log(`all steps passed; screenshots in ${ARTIFACTS}`);
