// Opens a report file in headless Chromium with every network request blocked, and writes
// what the page did as JSON: console errors, page errors, the requests it tried, the sections
// present, and every value mark (data-table, data-column, data-key, data-value). Screenshots
// of the whole page and of each section go to SHOT_DIR.
//
//   node open.mjs REPORT.html RESULT.json SHOT_DIR
import { chromium } from "playwright-core";
import { mkdirSync, writeFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import path from "node:path";

const [report, result, shots] = process.argv.slice(2);
mkdirSync(shots, { recursive: true });
const url = pathToFileURL(path.resolve(report)).href;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const errors = [];
  const requests = [];
  page.on("console", (m) => { if (m.type() === "error") errors.push(`console: ${m.text()}`); });
  page.on("pageerror", (e) => errors.push(`page error: ${e.message}`));
  page.on("requestfailed", (r) => { if (r.url() !== url) errors.push(`request failed: ${r.url()}`); });
  // Only the report itself may load; anything else is recorded and refused.
  await page.route("**/*", (route) => {
    const u = route.request().url();
    requests.push(u);
    return u === url ? route.continue() : route.abort("blockedbyclient");
  });
  await page.goto(url, { waitUntil: "load" });
  await page.screenshot({ path: path.join(shots, "report.png"), fullPage: true });
  const sections = await page.$$eval("section", (s) => s.map((e) => e.id));
  for (const id of sections) {
    await page.locator(`section#${id}`).screenshot({ path: path.join(shots, `${id}.png`) });
  }
  const marks = await page.$$eval("[data-value]", (els) => els.map((e) => ({
    table: e.dataset.table, column: e.dataset.column, key: e.dataset.key, value: e.dataset.value,
  })));
  const pdf = await page.pdf({ format: "A4" });
  writeFileSync(result, JSON.stringify({ url, errors, requests, sections, marks, pdf_bytes: pdf.length }));
} finally {
  await browser.close();
}
