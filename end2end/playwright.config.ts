import { defineConfig } from '@playwright/test';
import * as path from 'node:path';
import { CHROMIUM_ARGS, CHROMIUM_PATH } from './chromium.mjs';

// The server under test: started fresh, on its own port and data directory,
// for every run. scripts/test builds it first (debug by default).
const port = Number(process.env.NOTESYNC_E2E_PORT ?? 3107);
const root = path.resolve(__dirname, '..');
const bin = process.env.NOTESYNC_E2E_BIN ?? 'target/debug/notesync';
const dataDir = 'end2end/.data';

export default defineConfig({
  testDir: './tests',
  timeout: 60_000,
  expect: { timeout: 15_000 },
  // Two cores: one browser at a time keeps timings honest and tests stable.
  workers: 1,
  fullyParallel: false,
  forbidOnly: !!process.env.CI,
  reporter: [['list']],
  outputDir: 'test-results',
  use: {
    baseURL: `http://127.0.0.1:${port}`,
    trace: 'retain-on-failure',
    launchOptions: { executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS },
  },
  webServer: {
    command: `rm -rf ${dataDir} && exec ${bin} --addr 127.0.0.1:${port} --data-dir ${dataDir} --attempts-per-address 10000`,
    cwd: root,
    url: `http://127.0.0.1:${port}/healthz`,
    reuseExistingServer: false,
    timeout: 120_000,
    stdout: 'pipe',
    stderr: 'pipe',
  },
});
