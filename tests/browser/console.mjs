// The review console in a real browser: Debian's chromium, headless, driven by playwright-core.
// Run by tests/it/console.rs against a running entitywatch with open alerts in its store:
//
//   node tests/browser/console.mjs URL TOKEN
//
// It signs in with TOKEN (a review token), opens the queue of open alerts, dismisses the newest
// one with a reason, checks that it left the queue and that the audit export (downloaded as a
// browser downloads it) records the dismissal, and signs out. Any failed check exits 1 with
// what was expected. With CONSOLE_SCREENSHOTS=DIR it writes DIR/console-queue.png and
// DIR/console-alert.png, the README's screenshots. CHROMIUM names the browser binary
// (default /usr/bin/chromium; scripts/services.sh installs it).

import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { chromium } from "playwright-core";

const [base, token] = process.argv.slice(2);
if (!base || !token) {
  console.error("usage: node tests/browser/console.mjs URL TOKEN");
  process.exit(2);
}
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const shots = process.env.CONSOLE_SCREENSHOTS;
const reason = `browser test ${Date.now()}: a different company of the same name`;

function check(condition, what) {
  if (!condition) throw new Error(`expected ${what}`);
}

// The machine's network is closed: Chromium's background connections would only be refused.
const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: [
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
let failed = false;
try {
  const context = await browser.newContext({
    acceptDownloads: true,
    viewport: { width: 1280, height: 860 },
  });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  // The pages need no script; a page error would mean something injected one.
  const pageErrors = [];
  page.on("pageerror", (e) => pageErrors.push(String(e)));

  // Signed out, the console sends the browser to sign in.
  await page.goto(`${base}/`);
  check(new URL(page.url()).pathname === "/login", `the sign-in page, got ${page.url()}`);
  await page.fill("#token", token);
  await Promise.all([page.waitForURL("**/alerts?status=open"), page.click("button[type=submit]")]);

  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === "ew_session");
  check(session, "a session cookie");
  check(session.httpOnly && session.sameSite === "Strict", "an HttpOnly, SameSite=Strict cookie");
  check(!cookies.some((c) => c.value.includes(token.slice(3))), "no cookie holding the token");

  // The queue: open alerts, newest first.
  check((await page.textContent("h1")).trim() === "Open alerts", "the heading 'Open alerts'");
  const rows = page.locator("table.alerts tbody tr");
  const before = await rows.count();
  check(before >= 2, `at least two open alerts, got ${before}`);
  if (shots) await page.screenshot({ path: join(shots, "console-queue.png"), fullPage: false });

  // Take a revised alert (its entry has a history worth a screenshot), or else the first.
  const revised = rows.filter({ has: page.locator("span.kind", { hasText: "revised" }) });
  const row = (await revised.count()) > 0 ? revised.first() : rows.first();
  const shortId = await row.getAttribute("data-alert");
  const supplier = (await row.locator("td").nth(2).locator("a").textContent()).trim();
  await Promise.all([page.waitForURL(/\/alerts\/[0-9a-f]{64}$/), row.locator("a.open").click()]);
  check((await page.textContent("h1")).includes(supplier), `the alert page of ${supplier}`);
  for (const section of ["Supplier", "Listed entry", "What the listing means", "Match", "Entry history"]) {
    check(
      (await page.locator("h2", { hasText: section }).count()) === 1,
      `a section "${section}" on the alert page`,
    );
  }
  const ruleLink = await page.locator("dt:text-is('The rule') + dd a").getAttribute("href");
  check(ruleLink.startsWith("https://www.federalregister.gov/"), `a link to the rule, got ${ruleLink}`);
  if (shots) await page.screenshot({ path: join(shots, "console-alert.png"), fullPage: true });

  // Dismiss it with a reason.
  await page.fill("#reason", reason);
  await Promise.all([page.waitForLoadState("load"), page.click("button[value=dismiss]")]);
  await page.waitForSelector("h1 .badge.dismissed");
  check((await page.textContent("table")).includes(reason), "the reason among the decisions");

  // It left the queue of open alerts...
  await page.goto(`${base}/alerts?status=open`);
  const after = await page.locator("table.alerts tbody tr").count();
  check(after === before - 1, `${before - 1} open alerts after the dismissal, got ${after}`);
  check(
    (await page.locator(`tr[data-alert="${shortId}"]`).count()) === 0,
    `alert ${shortId} gone from the open queue`,
  );
  // ...and is in the dismissed ones.
  await page.selectOption("select[name=status]", "dismissed");
  await Promise.all([page.waitForURL(/status=dismissed/), page.click("form.filter button")]);
  check(
    (await page.locator(`tr[data-alert="${shortId}"]`).count()) === 1,
    `alert ${shortId} among the dismissed`,
  );

  // The audit export, downloaded as a browser downloads it, records the dismissal.
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.click("nav a[href='/audit.csv']"),
  ]);
  check(/^entitywatch-audit-.*\.csv$/.test(download.suggestedFilename()), "a CSV file name");
  const csv = await readFile(await download.path(), "utf8");
  const lines = csv.trim().split("\n");
  check(lines[0].startsWith("at,record,supplier_id,entity_key"), "the audit CSV header");
  const reviewLine = lines.find((l) => l.includes(reason));
  check(reviewLine, `the dismissal in the audit export:\n${csv.slice(0, 2000)}`);
  check(/,review,/.test(reviewLine) && /,dismiss,/.test(reviewLine), `a review record: ${reviewLine}`);
  check(lines.some((l) => l.includes(",decision,")), "the screening decisions in the audit export");

  // Signing out ends the session: the console asks to sign in again.
  await Promise.all([page.waitForURL("**/login"), page.click("form.who button")]);
  await page.goto(`${base}/alerts?status=open`);
  check(new URL(page.url()).pathname === "/login", "the sign-in page after signing out");

  check(pageErrors.length === 0, `no page errors, got ${pageErrors.join("; ")}`);
  console.log(
    JSON.stringify({ signed_in: true, open_before: before, open_after: after, dismissed: shortId }),
  );
} catch (e) {
  failed = true;
  console.error(`console browser test failed: ${e.message}`);
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
