#!/usr/bin/env node
// A probe, not part of the benchmark: what IndexedDB itself costs for a
// transaction shaped like the app's save of an edit (two gets, then three
// puts of 1-2 KB records over three stores with an index each), in a dedicated
// worker of an otherwise idle page, left to commit by itself or committed
// with IDBTransaction.commit() right behind the puts (docs/performance.md,
// "What this browser costs"). Prints p50 and p95 of each, in milliseconds.
//   node end2end/bench/probe-save.mjs
import { createServer } from 'node:http';
import { chromium } from 'playwright-core';
import { CHROMIUM_ARGS, CHROMIUM_PATH } from '../chromium.mjs';

const ROUNDS = Number(process.env.ROUNDS ?? 1200);
const WARM_UP = 200;

// Runs in the worker: alternates the two ways, so drift affects both alike.
const workerSource = `
const request = (r) => new Promise((resolve, reject) => {
  r.onsuccess = () => resolve(r.result);
  r.onerror = () => reject(r.error);
});
onmessage = async ({ data: { rounds, warmUp } }) => {
  const db = await new Promise((resolve, reject) => {
    const open = indexedDB.open('probe-' + Date.now(), 1);
    open.onupgradeneeded = () => {
      const d = open.result;
      d.createObjectStore('notes', { keyPath: 'id' }).createIndex('updated_at', 'updated_at');
      d.createObjectStore('outbox', { keyPath: 'id' }).createIndex('push_order', 'at');
      d.createObjectStore('versions', { keyPath: 'key' });
    };
    open.onsuccess = () => resolve(open.result);
    open.onerror = () => reject(open.error);
  });
  const body = 'x'.repeat(1000);
  const times = { auto: [], explicit: [] };
  for (let i = 0; i < rounds; i++) {
    const way = i % 2 ? 'explicit' : 'auto';
    const start = performance.now();
    const tx = db.transaction(['notes', 'outbox', 'versions'], 'readwrite');
    const done = new Promise((resolve, reject) => {
      tx.oncomplete = resolve;
      tx.onabort = () => reject(tx.error);
    });
    await Promise.all([request(tx.objectStore('notes').get('n')), request(tx.objectStore('outbox').get('n'))]);
    tx.objectStore('notes').put({ id: 'n', updated_at: i, title: 'title ' + i, body });
    tx.objectStore('outbox').put({ id: 'n', at: i, base: body, draft: body });
    tx.objectStore('versions').put({ key: 'outbox', value: Math.random() });
    if (way === 'explicit') tx.commit();
    await done;
    if (i >= warmUp) times[way].push(performance.now() - start);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  postMessage(times);
};`;

const server = createServer((_, res) => {
  res.setHeader('content-type', 'text/html');
  res.end('<!doctype html><title>probe</title>');
}).listen(0, '127.0.0.1');
await new Promise((resolve) => server.once('listening', resolve));
const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });
try {
  const page = await browser.newPage();
  await page.goto(`http://127.0.0.1:${server.address().port}/`);
  const times = await page.evaluate(({ source, rounds, warmUp }) => new Promise((resolve, reject) => {
    const worker = new Worker(URL.createObjectURL(new Blob([source], { type: 'text/javascript' })));
    worker.onmessage = (e) => resolve(e.data);
    worker.onerror = (e) => reject(new Error(e.message));
    worker.postMessage({ rounds, warmUp });
  }), { source: workerSource, rounds: ROUNDS, warmUp: WARM_UP });
  const percentile = (values, p) => {
    const sorted = [...values].sort((a, b) => a - b);
    return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
  };
  for (const [way, values] of Object.entries(times)) {
    console.log(`${way.padEnd(9)} p50 ${percentile(values, 50).toFixed(2)} ms  p95 ${percentile(values, 95).toFixed(2)} ms  (${values.length} transactions)`);
  }
} finally {
  await browser.close();
  server.close();
}
