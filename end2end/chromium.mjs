// How every browser run here starts Debian's Chromium: the Playwright tests
// (playwright.config.ts) and the benchmark (bench/bench.mjs). Without the
// background-networking flags Chromium keeps trying hosts this machine's
// closed network refuses.
export const CHROMIUM_PATH = process.env.CHROMIUM ?? '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
