// The gateway's dashboard in a real browser: Debian's chromium, driven by playwright-core.
//
// Starts real gateways (a two-gateway mesh whose second gateway joins later) and real clients
// (`mm listen`, `mm bench`), opens the dashboard and checks that:
//   1. the page loads and names the gateway;
//   2. a service appears when a client connects to it;
//   3. its rates move when traffic flows, and its top subject shows;
//   4. the second gateway appears on the mesh map, link up, when it joins;
// then saves a screenshot to docs/dashboard.png for the README.
//
// Binaries: $MM_GATEWAY_BIN and $MM_BIN, default target/debug/mm-gateway and target/debug/mm.
// Browser: $CHROMIUM_BIN, default /usr/bin/chromium. Run: node tests/browser/dashboard.test.mjs

import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const gatewayBin = process.env.MM_GATEWAY_BIN || join(root, "target/debug/mm-gateway");
const mmBin = process.env.MM_BIN || join(root, "target/debug/mm");
const chromiumBin = process.env.CHROMIUM_BIN || "/usr/bin/chromium";
const screenshot = join(root, "docs/dashboard.png");
const PATIENCE = 20_000;

const children = [];
const scratch = mkdtempSync(join(tmpdir(), "mm-dashboard-"));
let passed = 0;
let failed = 0;

function freePort() {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once("error", fail);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => done(port));
    });
  });
}

/** Starts a process; resolves with it and the stdout lines matching `ready` (all of them). */
function start(binary, args, readyLines = 0) {
  const child = spawn(binary, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, RUST_LOG: "warn" } });
  children.push(child);
  let log = "";
  child.stderr.on("data", (chunk) => { log += chunk; });
  if (readyLines === 0) return Promise.resolve({ child, lines: [], log: () => log });
  return new Promise((done, fail) => {
    let buffer = "";
    const lines = [];
    const timer = setTimeout(() => fail(new Error(`${binary} did not start: ${log}`)), PATIENCE);
    child.stdout.on("data", (chunk) => {
      buffer += chunk;
      let end;
      while ((end = buffer.indexOf("\n")) >= 0) {
        lines.push(buffer.slice(0, end));
        buffer = buffer.slice(end + 1);
      }
      if (lines.length >= readyLines) {
        clearTimeout(timer);
        done({ child, lines, log: () => log });
      }
    });
    child.once("exit", (code) => fail(new Error(`${binary} exited with ${code}: ${log}`)));
  });
}

async function step(name, body) {
  const started = Date.now();
  try {
    await body();
    passed++;
    console.log(`ok   ${name} (${Date.now() - started} ms)`);
  } catch (error) {
    failed++;
    console.log(`FAIL ${name}: ${error.message}`);
    throw error;
  }
}

async function main() {
  const [port1, port2] = [await freePort(), await freePort()];
  const config = join(scratch, "mesh.json");
  writeFileSync(config, JSON.stringify({
    StartupMeshes: [{ Name: "MESHED", MeshGateways: [`127.0.0.1:${port1}`, `127.0.0.1:${port2}`] }],
    HttpPort: 0,
    RedialMaxMs: 500,
  }));
  const gateway = await start(gatewayBin, ["--port", String(port1), "--bind", "127.0.0.1", "--name", "gw1", "--config", config], 2);
  const http = gateway.lines[1].replace("mm-gateway monitoring on ", "");
  const address = `127.0.0.1:${port1}`;

  const context = await chromium.launchPersistentContext(join(scratch, "profile"), {
    executablePath: chromiumBin,
    headless: true,
    viewport: { width: 1440, height: 1000 },
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  try {
    const page = context.pages()[0] || (await context.newPage());
    page.setDefaultTimeout(PATIENCE);
    const external = [];
    page.on("request", (request) => { if (!request.url().startsWith(http)) external.push(request.url()); });
    const pageErrors = [];
    page.on("pageerror", (error) => pageErrors.push(error.message));

    await step("the page loads and names the gateway", async () => {
      await page.goto(http + "/");
      await page.waitForFunction(() => document.querySelector("#gateway-name").textContent === "gw1");
      await page.waitForSelector("#connection-state.live");
      await page.waitForSelector('[data-service="MESHED"]');
    });

    await step("a service appears when a client connects", async () => {
      const absent = await page.$('[data-service="LIVE"]');
      if (absent) throw new Error("LIVE shown before any client connected");
      await start(mmBin, ["listen", "--gateway", address, "--service", "LIVE", "quotes.>"]);
      await page.waitForSelector('[data-service="LIVE"] [data-field="clients"]');
      await page.waitForFunction(() => document.querySelector('[data-service="LIVE"] [data-field="clients"]').textContent === "1");
    });

    await step("its rates move when traffic flows", async () => {
      await start(mmBin, ["bench", "pubsub", "--system", "mm-raw", "--gateway", address, "--service", "LIVE",
                          "--duration", "30s", "--no-progress"]);
      await page.waitForFunction(() => Number(document.querySelector('[data-service="LIVE"]').dataset.rate) > 1000);
      await page.click('[data-service="LIVE"]');
      await page.waitForSelector('[data-service="LIVE"].selected');
      await page.waitForSelector('#subjects tr[data-subject="bench.x"]');
      await page.waitForFunction(() => Number(document.querySelector("#rates-chart").dataset.last) > 1000);
      await page.waitForSelector("#connections tr[data-connection]");
    });

    await step("a second gateway appears on the mesh map when it joins", async () => {
      await page.waitForSelector(`#mesh-map .node.down[data-peer="127.0.0.1:${port2}"]`);
      if (await page.$('#mesh-map [data-peer="gw2"]')) throw new Error("gw2 shown before it started");
      await start(gatewayBin, ["--port", String(port2), "--bind", "127.0.0.1", "--name", "gw2", "--config", config], 1);
      await page.waitForSelector('#mesh-map .node.up[data-peer="gw2"]');
      await page.waitForSelector("#events li.link_up");
    });

    await step("screenshot for the README, no request left the gateway", async () => {
      await page.waitForFunction(() => Number(document.querySelector("#rates-chart").dataset.samples) >= 8);
      await page.screenshot({ path: screenshot, fullPage: true });
      if (external.length) throw new Error("requests outside the gateway: " + external.join(", "));
      if (pageErrors.length) throw new Error("errors in the page: " + pageErrors.join("; "));
    });
  } finally {
    await context.close();
  }
}

let exitCode = 0;
try {
  await main();
} catch (error) {
  exitCode = 1;
  if (failed === 0) { failed++; console.log(`FAIL setup: ${error.message}`); }
} finally {
  for (const child of children) child.kill("SIGTERM");
  rmSync(scratch, { recursive: true, force: true });
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(exitCode);
