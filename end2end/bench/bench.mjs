// The browser benchmark of issue 7, run by end2end/bench/run (which builds
// the app and starts the server at BASE_URL).
//
// A plain Node program over playwright-core rather than a Playwright test:
// a benchmark is one long sequence whose scenarios feed each other (A's
// device is C's, D's and E's), with its own repetitions and aggregation;
// the test runner's per-test timeouts, retries and fixtures would only get in
// the way, and plain JavaScript runs on the machine's Node 20 with no
// TypeScript step.
//
// Clocks: every time is an epoch millisecond with sub-millisecond resolution,
// `performance.timeOrigin + performance.now()`, taken in the page, in its
// sync worker (whose transactions the page hears), or in Node where a
// scenario ends on the server. All processes run on this one machine
// and share its clock, so a page's and Node's readings compare directly.
//
// What each scenario measures is written at its function. Counts come from
// IndexedDB itself (the app's database, opened read-only by the page script
// once the app has created it), from the server's pull API, and the "synced"
// state from the sync indicator's data-state.

import { chromium } from 'playwright-core';
import { CHROMIUM_ARGS, CHROMIUM_PATH } from '../chromium.mjs';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { performance } from 'node:perf_hooks';

const BASE_URL = required('BASE_URL');
const SIZES = (process.env.N ?? '1000,10000').split(',').map((n) => positiveInt(n, 'N'));
const REPS = positiveInt(process.env.REPS ?? '3', 'REPS');
const D_EDITS = positiveInt(process.env.D_EDITS ?? '200', 'D_EDITS');
const E_EDITS = positiveInt(process.env.E_EDITS ?? '50', 'E_EDITS');
const OUT = required('OUT');
const PROFILE = process.env.PROFILE ?? 'release';
/** TIMINGS=1: every device logs the timings of its sync steps
 * (src/client/timings.rs), printed as they come, in ms since the start of
 * the scenario that is running. */
const TIMINGS = process.env.TIMINGS === '1';
/** TRACE=file: a Chromium trace of D and D-key (the first size's first
 * repetition: a trace is ~1 MB an edit) with the JavaScript and wasm
 * sampling profiler, for end2end/bench/trace-summary.mjs, DevTools'
 * Performance panel or Perfetto. Tracing slows the browser: its figures
 * are not comparable with an untraced run's. */
const TRACE = process.env.TRACE;
const TRACE_CATEGORIES = ['__metadata', 'toplevel', 'devtools.timeline', 'disabled-by-default-devtools.timeline',
  'v8', 'disabled-by-default-v8.cpu_profiler', 'IndexedDB'];
/** SCENARIOS=B,D: run only these (A runs whenever C, D or E does: they use its device). */
const SCENARIOS = new Set((process.env.SCENARIOS ?? 'A,B,C,D,E').split(','));
const wanted = (...ids) => ids.some((id) => SCENARIOS.has(id));

const PASSWORD = 'bench password 1234';
const PROTOCOL = 1;
/**
 * Changes per push when seeding the server from Node (not timed): within the
 * server's limit (LIMITS.max_batch_changes, 2,000) and its 8 MiB request.
 */
const PUSH_BATCH = 500;
/** The server's largest pull page (MAX_PULL_LIMIT). */
const PULL_PAGE = 5000;
/** Notes changed on the server in scenario C. */
const C_CHANGES = 100;
/** The sync worker's poll interval (Timing::default in src/sync/engine.rs):
 * E spreads its edits over one interval, so they fall at every phase of it. */
const POLL_MS = 30_000;

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} must be set (end2end/bench/run sets it)`);
  return value;
}

function positiveInt(text, name) {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, not "${text}"`);
  return n;
}

const now = () => performance.timeOrigin + performance.now();

/** `promise`, still to be awaited later, but whose failure before then (its
 * page closed after another step failed) must not end the process. */
function later(promise) {
  promise.catch(() => {});
  return promise;
}

/** `promise`, or a failure naming `what` after `ms`: a stuck step ends the run with a reason. */
async function within(ms, what, promise) {
  let timer;
  const expired = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took more than ${ms / 1000} s`)), ms);
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------- note data

/** A UUIDv7 in canonical lowercase form, as the app's ids are. */
function uuidv7() {
  const bytes = randomBytes(16);
  const ms = BigInt(Date.now());
  for (let i = 0; i < 6; i++) bytes[i] = Number((ms >> BigInt(8 * (5 - i))) & 0xffn);
  bytes[6] = 0x70 | (bytes[6] & 0x0f);
  bytes[8] = 0x80 | (bytes[8] & 0x3f);
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

const WORDS = ('sync offline note device server replica merge page draft ledger river garden '
  + 'window letter morning project meeting idea travel recipe budget summary question answer')
  .split(' ');

/** Deterministic text from a seed, so every run stores the same bytes. */
function words(seed, bytes) {
  let x = seed * 2654435761 % 4294967296 || 1;
  let text = '';
  let line = 0;
  while (text.length < bytes) {
    x = (x * 1103515245 + 12345) % 2147483648;
    const word = WORDS[x % WORDS.length];
    text += word;
    line += word.length + 1;
    if (line > 70) {
      text += '\n';
      line = 0;
    } else {
      text += ' ';
    }
  }
  return text.slice(0, bytes).trimEnd();
}

/** A note shaped as the issue says: title ~40 chars, body ~1 KB, 2 tags. */
function noteContent(i) {
  return {
    title: `Note ${i}: ${words(i + 7, 40)}`.slice(0, 40),
    body: words(i, 1024),
    tags: [`topic-${i % 10}`, `year-${2016 + (i % 10)}`],
  };
}

// ------------------------------------------------------------- server API

/** One signed-in session of the server functions, from Node. */
class Api {
  constructor(cookie, account) {
    this.cookie = cookie;
    this.account = account;
    this.clientId = uuidv7();
    this.counter = 0;
  }

  static async signUp(name) {
    const res = await call('/api/sign_up', { name, password: PASSWORD });
    const cookie = res.headers.getSetCookie().map((c) => c.split(';')[0]).find((c) => c.startsWith('notesync_session='));
    if (!cookie) throw new Error('sign_up set no session cookie');
    return new Api(cookie, await res.json());
  }

  async push(changes) {
    const res = await call('/api/push', { req: { protocol: PROTOCOL, client_id: this.clientId, changes } }, this.cookie);
    const { results } = await res.json();
    const bad = results.find((r) => r.result !== 'applied');
    if (bad) throw new Error(`the server did not apply a seeded change: ${JSON.stringify(bad)}`);
    return results;
  }

  /** The raw pull answer: a page, or resync_required. */
  async pullAnswer(checkpoint, limit) {
    const res = await call('/api/pull', { req: { protocol: PROTOCOL, checkpoint, limit } }, this.cookie);
    return res.json();
  }

  /** Whether the feed reaches seq `seq`: a checkpoint beyond the feed's end
   * answers resync_required (the store contract), one at its end an empty page. */
  async feedReaches(seq) {
    const answer = await this.pullAnswer(seq - 1, 1);
    return answer.kind === 'page' && answer.entries.length > 0;
  }

  async pull(checkpoint, limit) {
    const page = await this.pullAnswer(checkpoint, limit);
    if (page.kind !== 'page') throw new Error(`unexpected pull answer: ${JSON.stringify(page).slice(0, 200)}`);
    return page;
  }

  /** How many live notes the server holds for this user, read page by page. */
  async countNotes() {
    let checkpoint = 0;
    let live = 0;
    for (;;) {
      const page = await this.pull(checkpoint, PULL_PAGE);
      live += page.entries.filter((e) => !e.note.deleted).length;
      checkpoint = page.checkpoint;
      if (!page.has_more) return live;
    }
  }

  /** One change as the app's worker sends it (src/sync/protocol.rs). */
  change(noteId, baseRev, base, content, createdAt) {
    this.counter += 1;
    return {
      mutation_id: uuidv7(),
      note_id: noteId,
      base_rev: baseRev,
      base,
      op: { kind: 'upsert', ...content },
      hlc: { wall_ms: Date.now(), counter: this.counter, client: this.clientId },
      created_at: createdAt,
    };
  }

  /** Creates `count` notes in batches of the largest push; returns them with their revisions. */
  async seed(count) {
    const notes = [];
    for (let start = 0; start < count; start += PUSH_BATCH) {
      const batch = [];
      for (let i = start; i < Math.min(count, start + PUSH_BATCH); i++) {
        batch.push({ id: uuidv7(), content: noteContent(i), createdAt: Date.now() });
      }
      const results = await this.push(batch.map((n) => this.change(n.id, 0, null, n.content, n.createdAt)));
      results.forEach((r, k) => notes.push({ ...batch[k], rev: r.rev }));
    }
    return notes;
  }
}

async function call(path, body, cookie) {
  const headers = { 'content-type': 'application/json', origin: BASE_URL };
  if (cookie) headers.cookie = cookie;
  const res = await fetch(BASE_URL + path, { method: 'POST', headers, body: JSON.stringify(body) });
  if (!res.ok) throw new Error(`${path} answered ${res.status}: ${await res.text()}`);
  return res;
}

let userCounter = 0;
function userName() {
  userCounter += 1;
  return `bench${Date.now().toString(36)}${userCounter}`;
}

// --------------------------------------------------- in-page instrumentation

/**
 * Runs in every page before the app. It only observes: a log of the sync
 * indicator's states, the first note in the list, the times of edits and
 * file choices, every read-write IndexedDB transaction of the page (start and
 * `complete`), and text waited for in the DOM. A MutationObserver callback
 * runs once per batch of DOM changes and ignores the records themselves, so
 * it costs little even while 10,000 list rows are inserted.
 */
/** The channel on which `workerInstrument` reports the worker's transactions. */
const WORKER_TRANSACTIONS = 'notesync-bench-transactions';

/**
 * Installed in each tab's sync worker as soon as it starts: reports every
 * read-write transaction on the app's database, once complete, to the page's
 * `instrument` ({stores, start, end}, epoch milliseconds).
 */
function workerInstrument({ user, channelName }) {
  const clock = () => performance.timeOrigin + performance.now();
  const channel = new BroadcastChannel(channelName);
  const originalTransaction = IDBDatabase.prototype.transaction;
  IDBDatabase.prototype.transaction = function (stores, mode, options) {
    const tx = originalTransaction.call(this, stores, mode, options);
    if (mode === 'readwrite' && this.name === `notesync-${user}`) {
      const record = { stores: [].concat(stores).join(','), start: clock(), end: null };
      tx.addEventListener('complete', () => {
        record.end = clock();
        channel.postMessage(record);
      });
    }
    return tx;
  };
}

function instrument({ user, workerTransactions }) {
  const WORKER_TRANSACTIONS = workerTransactions;
  const clock = () => performance.timeOrigin + performance.now();
  const bench = {
    user,
    states: [],
    firstItemAt: null,
    inputs: [],
    changeAt: null,
    clickAt: null,
    transactions: [],
    watches: [],
    txWaiters: [],
    db: null,
  };
  window.__bench = bench;

  const originalTransaction = IDBDatabase.prototype.transaction;
  IDBDatabase.prototype.transaction = function (stores, mode, options) {
    const tx = originalTransaction.call(this, stores, mode, options);
    if (mode === 'readwrite' && this.name === `notesync-${user}`) {
      const record = { stores: [].concat(stores).join(','), start: clock(), end: null };
      bench.transactions.push(record);
      tx.addEventListener('complete', () => {
        record.end = clock();
        for (const waiter of bench.txWaiters.slice()) waiter(record);
      });
    }
    return tx;
  };

  // The tab's sync worker saves the page's edits: its transactions, dated
  // by its own clock (the same epoch clock), arrive here through
  // `workerInstrument`'s channel.
  new BroadcastChannel(WORKER_TRANSACTIONS).onmessage = (e) => {
    const record = e.data;
    bench.transactions.push(record);
    for (const waiter of bench.txWaiters.slice()) waiter(record);
  };

  addEventListener('input', (e) => {
    if (e.target && e.target.id === 'note-body') bench.inputs.push(clock());
  }, true);
  addEventListener('change', (e) => {
    if (e.target && e.target.id === 'import-file') bench.changeAt = clock();
  }, true);
  addEventListener('click', (e) => {
    if (e.target && e.target.closest && e.target.closest('[data-testid=sync-status]')) bench.clickAt = clock();
  }, true);

  const check = () => {
    const t = clock();
    const indicator = document.querySelector('[data-testid=sync-status]');
    const state = indicator ? indicator.getAttribute('data-state') : null;
    const last = bench.states[bench.states.length - 1];
    if (state && (!last || last.state !== state)) {
      bench.states.push({ state, t });
      for (const waiter of bench.stateWaiters ?? []) waiter();
    }
    if (bench.firstItemAt === null && document.querySelector('.note-item')) {
      bench.firstItemSeenAt = t;
      bench.firstItemAt = 0;
      // Visible means in a rendered frame: the next animation frame.
      requestAnimationFrame(() => { bench.firstItemAt = clock(); });
    }
    if (bench.watches.length > 0) {
      bench.watches = bench.watches.filter((w) => {
        const el = document.querySelector(w.selector);
        if (el && el.textContent.includes(w.text)) {
          w.resolve(t);
          return false;
        }
        return true;
      });
    }
  };
  bench.stateWaiters = [];
  new MutationObserver(check).observe(document, {
    subtree: true, childList: true, characterData: true, attributes: true, attributeFilter: ['data-state'],
  });

  /** Resolves with the time `text` shows in the element `selector` names. */
  bench.waitText = (selector, text) => new Promise((resolve) => {
    bench.watches.push({ selector, text, resolve });
    check();
  });

  /** The app's database, opened only once the app has created it. */
  bench.openDb = async () => {
    if (bench.db) return bench.db;
    const name = `notesync-${user}`;
    const known = await indexedDB.databases();
    if (!known.some((d) => d.name === name)) throw new Error(`the app has not created ${name} yet`);
    bench.db = await new Promise((resolve, reject) => {
      const req = indexedDB.open(name);
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
    return bench.db;
  };

  const request = (req) => new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });

  /** Live notes and pending changes in IndexedDB. */
  bench.counts = async () => {
    const db = await bench.openDb();
    const tx = db.transaction(['notes', 'outbox'], 'readonly');
    const notes = await request(tx.objectStore('notes').getAll());
    const pending = await request(tx.objectStore('outbox').count());
    return { live: notes.filter((n) => !n.deleted).length, pending };
  };

  /**
   * How many records the notes store holds: a count, not a read, so that a
   * check inside a timed part does not hold the app's transactions back
   * (reading 10,000 notes takes ~200 ms, and a read-write transaction on the
   * store waits for it).
   */
  bench.storedNotes = async () => {
    const db = await bench.openDb();
    return request(db.transaction('notes', 'readonly').objectStore('notes').count());
  };

  /** How many of `ids` have a body starting with `prefix` in IndexedDB. */
  bench.bodiesStartingWith = async (ids, prefix) => {
    const db = await bench.openDb();
    const store = db.transaction('notes', 'readonly').objectStore('notes');
    const notes = await Promise.all(ids.map((id) => request(store.get(id))));
    return notes.filter((n) => n && n.body.startsWith(prefix)).length;
  };

  /**
   * Resolves with the arrival time of the sync leader's broadcast that
   * completes, with those before it, the notes `ids` stored with a body
   * starting with `prefix`. The leader sends a `pulled` message with the
   * notes as stored once their transaction committed, so that is when
   * IndexedDB held them all (and the pages heard of them); IndexedDB is read
   * once more then to confirm. Polling IndexedDB every few milliseconds
   * instead would compete with the very transactions it waits for.
   */
  bench.pulledWhen = (ids, prefix, timeoutMs = 30_000) => new Promise((resolve, reject) => {
    const wanted = new Set(ids);
    const seen = new Set();
    const channel = new BroadcastChannel(`notesync-${user}`);
    const timer = setTimeout(() => {
      channel.close();
      reject(new Error(`only ${seen.size} of ${ids.length} notes were broadcast as stored`));
    }, timeoutMs);
    channel.onmessage = async (e) => {
      const at = clock();
      const message = typeof e.data === 'string' ? JSON.parse(e.data) : e.data;
      if (message.type !== 'pulled') return;
      for (const note of message.stored) {
        if (wanted.has(note.id) && note.body.startsWith(prefix)) seen.add(note.id);
      }
      if (seen.size < wanted.size) return;
      clearTimeout(timer);
      channel.close();
      const stored = await bench.bodiesStartingWith(ids, prefix);
      if (stored === ids.length) resolve(at);
      else reject(new Error(`broadcast as stored, but IndexedDB holds ${stored} of ${ids.length}`));
    };
  });

  /**
   * Resolves with the time of the first "synced" state, after a "syncing"
   * one, both after `after`, at which `done()` holds (checked right then).
   * The worker reports "synced" only after its IndexedDB transactions have
   * committed, so that time is when the data was both stored and shown as
   * synced.
   */
  bench.syncedWhen = (after, done) => new Promise((resolve, reject) => {
    let checking = false;
    const attempt = async () => {
      if (checking) return;
      const since = bench.states.filter((s) => s.t >= after);
      const syncing = since.findIndex((s) => s.state === 'syncing');
      const synced = since.slice(syncing + 1).filter((s) => s.state === 'synced');
      if (syncing < 0 || synced.length === 0) return;
      checking = true;
      try {
        for (const s of synced) {
          if (s.checked) continue;
          s.checked = true;
          if (await done()) {
            bench.stateWaiters = bench.stateWaiters.filter((w) => w !== attempt);
            resolve(s.t);
            return;
          }
        }
      } catch (e) {
        reject(e);
      } finally {
        checking = false;
      }
    };
    bench.stateWaiters.push(attempt);
    attempt();
  });

  /**
   * Resolves with the end time of the first read-write transaction over
   * (at least) `stores` that started at or after `after` and completed, and
   * after which `done()` holds.
   */
  bench.committedWhen = (after, stores, done) => new Promise((resolve, reject) => {
    const attempt = async (record) => {
      const covers = stores.split(',').every((name) => record.stores.split(',').includes(name));
      if (record.start < after || record.end === null || !covers || record.checked) return;
      record.checked = true;
      try {
        if (await done()) {
          bench.txWaiters = bench.txWaiters.filter((w) => w !== attempt);
          resolve(record);
        }
      } catch (e) {
        reject(e);
      }
    };
    bench.txWaiters.push(attempt);
    bench.transactions.forEach(attempt);
  });
}

// ------------------------------------------------------------ the browser

let browser;
/** When the running scenario started (TIMINGS lines are relative to it). */
let scenarioStart = now();
let devices = 0;

/** A fresh browser context (own profile: empty IndexedDB), signed in as `account`. */
async function device(account) {
  const context = await browser.newContext({ baseURL: BASE_URL, viewport: { width: 1280, height: 800 } });
  await context.addInitScript(instrument, { user: account.id, workerTransactions: WORKER_TRANSACTIONS });
  if (TIMINGS) {
    await context.addInitScript(() => localStorage.setItem('notesync.timings', '1'));
  }
  const res = await context.request.post('/api/sign_in', {
    data: { name: account.name, password: PASSWORD },
    headers: { origin: BASE_URL },
  });
  if (!res.ok()) throw new Error(`sign_in answered ${res.status()}: ${await res.text()}`);
  const page = await context.newPage();
  page.on('pageerror', (e) => console.error(`page error: ${e.message}`));
  page.on('crash', () => console.error('the page crashed'));
  page.on('worker', (worker) => {
    // Sent as the worker attaches, long before a scenario's edits; a worker
    // that ends first (its tab frozen) needs nothing.
    worker.evaluate(workerInstrument, { user: account.id, channelName: WORKER_TRANSACTIONS }).catch(() => {});
  });
  if (TIMINGS) {
    devices += 1;
    const label = `device ${devices}`;
    page.on('console', (m) => {
      const timing = /^notesync timing (.+) ([\d.]+) ms at ([\d.]+)$/.exec(m.text());
      if (timing) {
        const at = (Number(timing[3]) - scenarioStart).toFixed(1).padStart(9);
        console.log(`    ${at} ms  ${label}  ${timing[1]}: ${timing[2]} ms`);
      }
    });
  }
  return { context, page };
}

/** Closes a device; a failure to close must not hide the error that ended its scenario. */
async function closeDevice(dev) {
  await dev.context.close().catch((e) => console.error(`closing a browser context: ${e.message}`));
}

/** Opens the app and resolves once `count` live notes are in IndexedDB and shown as synced. */
async function openSynced(page, count) {
  await page.goto('/');
  return page.evaluate((count) => window.__bench.syncedWhen(0, async () => {
    const { live } = await window.__bench.counts();
    return live === count;
  }), count);
}

// ------------------------------------------------------------- scenarios

/**
 * A: a fresh device of a person with `n` notes on the server. From the sync
 * worker's first "syncing" (the start of sync) until all `n` notes are in
 * IndexedDB and the indicator says "synced"; A-first-screen until the first
 * note of the list is in a rendered frame. A-open adds what precedes sync on
 * a new device: from navigation start (page load, wasm, worker start).
 */
async function scenarioA(api, n) {
  const dev = await device(api.account);
  await dev.page.goto('/');
  const done = await dev.page.evaluate((n) => window.__bench.syncedWhen(0, async () => {
    const { live } = await window.__bench.counts();
    return live === n;
  }), n);
  const marks = await dev.page.evaluate(() => {
    const b = window.__bench;
    return {
      syncStart: b.states.find((s) => s.state === 'syncing').t,
      firstItemAt: b.firstItemAt,
      navigationStart: performance.timeOrigin,
    };
  });
  return {
    dev,
    figures: {
      A: done - marks.syncStart,
      'A-first-screen': marks.firstItemAt - marks.syncStart,
      'A-open': done - marks.navigationStart,
    },
  };
}

/** Notes changed in C: 100, or every note when there are fewer. */
const cChanges = (n) => Math.min(C_CHANGES, n);

/**
 * C: after A, 100 notes change on the server (through the push API). The
 * server pokes the browser's live connection, with the changes; from just
 * before the push until the sync leader says it stored all 100 in IndexedDB.
 */
async function scenarioC(api, dev, seeded, rep) {
  const marker = `C${rep}-${Date.now()}:`;
  const changed = seeded.slice(0, cChanges(seeded.length));
  const changes = changed.map((note) => api.change(
    note.id, note.rev, note.content,
    { ...note.content, body: `${marker} ${note.content.body}` }, note.createdAt,
  ));
  const ids = changed.map((note) => note.id);
  // Nothing asks the browser to sync: the server's push pokes its live
  // connection. Timed from just before the push until IndexedDB holds all.
  const startAt = await dev.page.evaluate(({ ids, marker }) => {
    const b = window.__bench;
    b.cStored = b.pulledWhen(ids, marker);
    return performance.timeOrigin + performance.now();
  }, { ids, marker });
  await api.push(changes);
  const doneAt = await dev.page.evaluate(() => window.__bench.cStored);
  return { C: doneAt - startAt };
}

function percentile(values, p) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

/**
 * Watches the next edit of note `id` (from the next input event). `done`
 * resolves with that event's time, when the note's list row showed
 * `shownText`, and the first read-write transaction after which the stored
 * body starts with `storedPrefix`. (An object: awaiting a bare promise here
 * would wait for the edit itself.)
 */
async function observeEdit(page, id, shownText, storedPrefix) {
  const inputsBefore = await page.evaluate(() => window.__bench.inputs.length);
  const done = later(page.evaluate(({ id, shownText, storedPrefix, inputsBefore }) => {
    const b = window.__bench;
    return new Promise((resolve, reject) => {
      const started = () => {
        if (b.inputs.length <= inputsBefore) return setTimeout(started, 0);
        const inputAt = b.inputs[inputsBefore];
        const shown = b.waitText(`.note-item[data-note-id="${id}"] .note-preview`, shownText);
        const stored = b.committedWhen(inputAt, 'notes,outbox',
          async () => (await b.bodiesStartingWith([id], storedPrefix)) === 1);
        Promise.all([shown, stored]).then(([shownAt, record]) => resolve({ inputAt, shownAt, record }), reject);
      };
      started();
    });
  }, { id, shownText, storedPrefix, inputsBefore }));
  return { done };
}

/** The seeded note shown first in the device's list. */
async function topNote(dev, seeded) {
  const id = await dev.page.locator('.note-item').first().getAttribute('data-note-id');
  const note = seeded.find((n) => n.id === id);
  if (!note) throw new Error(`the list's first note ${id} is not one the benchmark seeded`);
  return note;
}

/**
 * D: D_EDITS sequential edits of the open note's body, each replacing the
 * whole ~1 KB body (Playwright's fill: Chromium inserts it as one editing
 * command per line, so one input event per line, 28 here, all in one task).
 * Per edit: to IndexedDB committed, from the first input event to the
 * `complete` of the first transaction that stored the new text (checked by
 * reading it back), the tab's worker's (which saves the page's edits) or the
 * page's; to the UI updated, from that input event to the list row showing
 * the new text. D-idb-write is the transaction alone, start to complete.
 * The app writes an edit at once (one write in flight).
 */
async function scenarioD(dev, note, rep) {
  const { page } = dev;
  await page.locator(`.note-item[data-note-id="${note.id}"]`).click();
  const body = page.locator('#note-body');
  const idb = [];
  const write = [];
  const ui = [];
  for (let k = 0; k < D_EDITS; k++) {
    const marker = `D${rep}x${k}y${Date.now().toString(36)}`;
    const { done: waiting } = await observeEdit(page, note.id, marker, marker);
    await body.fill(`${marker} ${note.content.body}`);
    const { inputAt, shownAt, record } = await within(60_000, `D: edit ${k + 1} (stored and shown)`, waiting);
    idb.push(record.end - inputAt);
    write.push(record.end - record.start);
    ui.push(shownAt - inputAt);
    if (TIMINGS) {
      const at = (inputAt - scenarioStart).toFixed(1).padStart(9);
      console.log(`    ${at} ms  D edit ${k + 1}: idb ${(record.end - inputAt).toFixed(1)} ms, its transaction ${(record.end - record.start).toFixed(1)} ms from ${(record.start - scenarioStart).toFixed(1)}, ui ${(shownAt - inputAt).toFixed(1)} ms`);
    }
  }
  return {
    'D-idb-p50': percentile(idb, 50),
    'D-idb-p95': percentile(idb, 95),
    'D-idb-write-p50': percentile(write, 50),
    'D-idb-write-p95': percentile(write, 95),
    'D-ui-p95': percentile(ui, 95),
  };
}

/**
 * D-key: D_EDITS sequential keystrokes at the start of the open note's body
 * (the caret sent there first, so each keystroke is one input event and its
 * letter starts the list row's preview), as a person types. Per keystroke:
 * to IndexedDB committed, from its input event to the `complete` of the
 * first transaction after which the stored body starts with everything
 * typed so far; to the UI updated, until the list row's preview shows it.
 */
async function scenarioDKey(dev, note, rep) {
  const { page } = dev;
  await page.locator(`.note-item[data-note-id="${note.id}"]`).click();
  await page.locator('#note-body').click();
  const idb = [];
  const ui = [];
  let typed = '';
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  for (let k = 0; k < D_EDITS; k++) {
    const letter = letters[(k * 7 + rep) % letters.length];
    typed = letter + typed;
    const prefix = typed.slice(0, 40);
    await page.keyboard.press('Control+Home');
    const { done: waiting } = await observeEdit(page, note.id, prefix, typed);
    await page.keyboard.type(letter);
    const { inputAt, shownAt, record } = await within(60_000, `D-key: keystroke ${k + 1} (stored and shown)`, waiting);
    idb.push(record.end - inputAt);
    ui.push(shownAt - inputAt);
  }
  return {
    'D-key-idb-p50': percentile(idb, 50),
    'D-key-idb-p95': percentile(idb, 95),
    'D-key-ui-p95': percentile(ui, 95),
  };
}

/**
 * E: two devices of the same person, both synced. E_EDITS edits on device
 * A, each of a different note, spread evenly over one poll interval (so they
 * meet device B's 30 s poll at every phase, as edits made at random moments
 * would); each from its input event on A until its text shows in B's list.
 * Nothing in the benchmark asks B to sync: A's push makes the server poke
 * B's live connection, and B pulls (the 300 ms save pause on A included).
 */
async function scenarioE(api, devA, n, rep) {
  const devB = await device(api.account);
  try {
    await openSynced(devB.page, n);
    const ids = await devA.page.evaluate((count) => [...document.querySelectorAll('.note-item')]
      .slice(0, count).map((el) => el.getAttribute('data-note-id')), E_EDITS);
    if (ids.length < E_EDITS) throw new Error(`E needs ${E_EDITS} notes in the list, found ${ids.length}`);
    const spacing = POLL_MS / E_EDITS;
    const start = now();
    const edits = [];
    for (let k = 0; k < ids.length; k++) {
      const wait = start + k * spacing - now();
      if (wait > 0) await sleep(wait);
      const marker = `E${rep}x${k}y${Date.now().toString(36)}`;
      const seen = later(devB.page.evaluate(({ id, marker }) => window.__bench.waitText(
        `.note-item[data-note-id="${id}"] .note-preview`, marker,
      ), { id: ids[k], marker }));
      const inputsBefore = await devA.page.evaluate(() => window.__bench.inputs.length);
      await devA.page.locator(`.note-item[data-note-id="${ids[k]}"]`).click();
      await devA.page.locator('#note-body').fill(`${marker} propagated edit ${k}`);
      const inputAt = await devA.page.evaluate((i) => window.__bench.inputs[i], inputsBefore);
      edits.push({ inputAt, seen });
    }
    const latencies = await within(POLL_MS * 2 + 30_000, 'E: every edit reaching device B',
      Promise.all(edits.map(async (e) => (await e.seen) - e.inputAt)));
    return { 'E-p50': percentile(latencies, 50), 'E-p95': percentile(latencies, 95) };
  } finally {
    await closeDevice(devB);
  }
}

/**
 * B: a fresh device of a person with no notes imports a file of `n` notes
 * (the Import button: one IndexedDB transaction of notes and their pending
 * changes). B-local-write: from the file input's change event until the
 * import says it is done (stored, then shown). B: from that transaction's
 * commit until the server holds all `n`, watched from Node by a one-entry pull
 * after checkpoint n-1 every 10 ms (each note is created once, so feed seq n
 * exists exactly when all n are stored) and confirmed by counting every live
 * note on the server.
 */
async function scenarioB(n) {
  const api = await Api.signUp(userName());
  const dev = await device(api.account);
  try {
    await dev.page.goto('/');
    await dev.page.getByTestId('empty-state').waitFor();
    await dev.page.locator('[data-testid=sync-status][data-state=synced]').waitFor();
    const file = Buffer.from(JSON.stringify(Array.from({ length: n }, (_, i) => noteContent(i))));
    const expected = `Imported ${n} notes`;
    const shown = later(dev.page.evaluate((text) => window.__bench.waitText('[data-testid=import-status]', text), expected));
    await dev.page.locator('#import-file').setInputFiles({ name: 'notes.json', mimeType: 'application/json', buffer: file });
    const shownAt = await shown;
    const { changeAt, committed } = await dev.page.evaluate(async (n) => {
      const b = window.__bench;
      const record = await b.committedWhen(b.changeAt, 'notes,outbox', async () => (await b.storedNotes()) === n);
      return { changeAt: b.changeAt, committed: record.end };
    }, n);
    let serverHasAll = null;
    while (serverHasAll === null) {
      if (await api.feedReaches(n)) serverHasAll = now();
      else await sleep(10);
    }
    // The account is new, so the store holds no deleted notes and its count
    // above was the live notes; confirmed here, after the timed part.
    const { live } = await dev.page.evaluate(() => window.__bench.counts());
    if (live !== n) throw new Error(`B: IndexedDB holds ${live} live notes, expected ${n}`);
    const onServer = await api.countNotes();
    if (onServer !== n) throw new Error(`B: the server holds ${onServer} notes, expected ${n}`);
    return { 'B-local-write': shownAt - changeAt, B: serverHasAll - committed };
  } finally {
    await closeDevice(dev);
  }
}

// ------------------------------------------------------------- reporting

const TARGETS = {
  A: '≤ 1600 (10k)',
  'A-first-screen': '≤ 300',
  B: '≤ 1300 (10k)',
  C: '≤ 50',
  'D-idb-p95': '≤ 5',
  'D-ui-p95': '≤ 16',
  'D-key-idb-p95': '≤ 5',
  'D-key-ui-p95': '≤ 16',
  'E-p95': '≤ 300',
};
const ORDER = ['A', 'A-first-screen', 'A-open', 'B-local-write', 'B', 'C', 'D-idb-p50', 'D-idb-p95',
  'D-idb-write-p50', 'D-idb-write-p95', 'D-ui-p95', 'D-key-idb-p50', 'D-key-idb-p95', 'D-key-ui-p95',
  'E-p50', 'E-p95'];
/** Documents per scenario run, where a rate means something. */
const DOCS = { A: (n) => n, 'A-open': (n) => n, 'B-local-write': (n) => n, B: (n) => n, C: (n) => cChanges(n) };

function summarise(samples, failures) {
  const results = [];
  for (const n of SIZES) {
    const byScenario = samples.get(n) ?? new Map();
    for (const scenario of ORDER) {
      const values = byScenario.get(scenario);
      const failure = failures.get(`${n}/${scenario}`);
      if (!values) {
        if (failure) results.push({ scenario, n, ms: null, docs_per_s: null, error: failure.error });
        continue;
      }
      const round = (v) => Math.round(v * 10) / 10;
      const median = percentile(values, 50);
      const docs = DOCS[scenario];
      results.push({
        scenario,
        n,
        ms: { median: round(median), min: round(Math.min(...values)), max: round(Math.max(...values)) },
        docs_per_s: docs ? Math.round(docs(n) / (median / 1000)) : null,
        // Fewer samples than REPS: some repetitions failed.
        ...(failure ? { error: failure.error } : {}),
      });
    }
  }
  return results;
}

function printTable(results) {
  const rows = [['scenario', 'n', 'median ms', 'min ms', 'max ms', 'docs/s', 'target ms']];
  for (const r of results) {
    if (r.ms === null) {
      rows.push([r.scenario, String(r.n), 'failed', '', '', '', TARGETS[r.scenario] ?? '']);
    } else {
      rows.push([r.scenario, String(r.n), r.ms.median.toFixed(1), r.ms.min.toFixed(1), r.ms.max.toFixed(1),
        r.docs_per_s === null ? '' : String(r.docs_per_s), TARGETS[r.scenario] ?? '']);
    }
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((row) => row[c].length)));
  for (const row of rows) console.log(row.map((cell, c) => (c < 1 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  '));
}

// ------------------------------------------------------------------ main

async function main() {
  browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });
  const samples = new Map();
  const record = (n, figures) => {
    if (!samples.has(n)) samples.set(n, new Map());
    for (const [scenario, ms] of Object.entries(figures)) {
      if (!Number.isFinite(ms) || ms < 0) throw new Error(`${scenario} at n=${n}: impossible time ${ms}`);
      const list = samples.get(n).get(scenario) ?? [];
      list.push(ms);
      samples.get(n).set(scenario, list);
    }
    console.log(`  ${Object.entries(figures).map(([k, v]) => `${k} ${v.toFixed(1)} ms`).join(' · ')}`);
  };
  // A scenario that fails (or exceeds its time limit) is reported with its
  // reason and the run goes on, so one size that is too slow in one scenario
  // still yields the others; the exit status says that something failed.
  const failures = new Map();
  const attempt = async (n, ids, run) => {
    scenarioStart = now();
    try {
      record(n, await run());
      return true;
    } catch (e) {
      console.error(`  ${ids.join(', ')} failed: ${e.message}`);
      for (const id of ids) if (!failures.has(`${n}/${id}`)) failures.set(`${n}/${id}`, { n, scenario: id, error: e.message });
      return false;
    }
  };
  try {
    for (const n of SIZES) {
      for (let rep = 1; rep <= REPS; rep++) {
        console.log(`n=${n} rep ${rep}/${REPS}`);
        let dev = null;
        if (wanted('A', 'C', 'D', 'E')) {
          const api = await Api.signUp(userName());
          const seeded = await api.seed(n);
          const aDone = await attempt(n, ['A', 'A-first-screen', 'A-open'], async () => {
            const a = await scenarioA(api, n);
            dev = a.dev;
            return a.figures;
          });
          if (aDone) {
            if (wanted('C')) await attempt(n, ['C'], () => scenarioC(api, dev, seeded, rep));
            // The note at the top of the list (the last edited: one of C's),
            // like the note a person is writing.
            if (wanted('D')) {
              const tracing = TRACE && n === SIZES[0] && rep === 1;
              if (tracing) await browser.startTracing(dev.page, { path: TRACE, categories: TRACE_CATEGORIES });
              await attempt(n, ['D-idb-p50', 'D-idb-p95', 'D-idb-write-p50', 'D-idb-write-p95', 'D-ui-p95'],
                async () => scenarioD(dev, await topNote(dev, seeded), rep));
              await attempt(n, ['D-key-idb-p50', 'D-key-idb-p95', 'D-key-ui-p95'],
                async () => scenarioDKey(dev, await topNote(dev, seeded), rep));
              if (tracing) {
                await browser.stopTracing();
                console.log(`  trace of D and D-key written to ${TRACE}`);
              }
            }
            if (wanted('E')) await attempt(n, ['E-p50', 'E-p95'], () => scenarioE(api, dev, n, rep));
          }
        }
        if (dev) await closeDevice(dev);
        if (wanted('B')) await attempt(n, ['B-local-write', 'B'], () => scenarioB(n));
      }
    }
  } finally {
    await browser.close();
  }
  const results = summarise(samples, failures);
  mkdirSync(dirname(OUT), { recursive: true });
  writeFileSync(OUT, `${JSON.stringify(results, null, 2)}\n`);
  console.log(`\nnotesync browser benchmark (${PROFILE} build, headless Chromium, REPS=${REPS}, D ${D_EDITS} edits, E ${E_EDITS} edits)`);
  printTable(results);
  console.log(`\nwritten to ${OUT}`);
  if (failures.size > 0) {
    console.error(`${failures.size} scenario figure(s) failed; see "error" in the results`);
    process.exitCode = 1;
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
