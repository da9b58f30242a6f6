import { test, expect, type Page, type Worker } from '@playwright/test';
import { NotesApp, uniqueName } from '../fixtures/app';

// Fault injection: IndexedDB calls fail on demand, exactly as the browser
// fails them (a DOMException with the real name), in the page and in its
// sync worker, which saves the page's edits while it runs. Each context also
// counts its read-write transactions on the notes, to show who saved.
function installFaults() {
  const g = globalThis as any;
  if (g.__notesyncFaults) return;
  g.__notesyncFaults = true;
  g.__notesyncNoteWrites = 0;
  const put = IDBObjectStore.prototype.put;
  IDBObjectStore.prototype.put = function (this: IDBObjectStore, ...args: any[]) {
    if (g.__notesyncFailPut || g.__notesyncFailPutOn === this.name) {
      throw new DOMException('Simulated: the quota has been exceeded.', 'QuotaExceededError');
    }
    return (put as any).apply(this, args);
  } as any;
  const transaction = IDBDatabase.prototype.transaction;
  IDBDatabase.prototype.transaction = function (this: IDBDatabase, ...args: any[]) {
    if (g.__notesyncCloseOnce) {
      g.__notesyncCloseOnce = false;
      throw new DOMException('The database connection is closing.', 'InvalidStateError');
    }
    const [stores, mode] = args;
    if (mode === 'readwrite' && [].concat(stores).includes('notes' as never)) g.__notesyncNoteWrites += 1;
    return (transaction as any).apply(this, args);
  } as any;
}

test.beforeEach(async ({ page }) => {
  await page.addInitScript(installFaults);
  page.on('worker', (worker) => {
    // Sent before any test step can reach the worker, so it applies first.
    worker.evaluate(installFaults).catch(() => {});
  });
});

/** The tab's sync worker, once it runs and has its faults installed. */
async function worker(page: Page) {
  await expect.poll(() => page.workers().length).toBeGreaterThan(0);
  const w = page.workers()[0];
  await expect.poll(() => w.evaluate(() => (globalThis as any).__notesyncFaults === true)).toBe(true);
  return w;
}

/**
 * Types and undoes a letter until the worker (`saver`) has saved an edit:
 * the page hands its saves to the worker only once the worker is ready.
 * The note's text is as before.
 */
async function untilTheWorkerSaves(app: NotesApp, saver: Worker) {
  await expect.poll(async () => {
    await app.body.press('End');
    await app.body.pressSequentially('x');
    await app.body.press('Backspace');
    await app.expectSaved();
    return saver.evaluate(() => (globalThis as any).__notesyncNoteWrites);
  }).toBeGreaterThan(0);
}

/** Sets a fault flag in the page and in its worker. */
async function fault(page: Page, name: string, on: boolean | string) {
  const set = ([name, on]: [string, boolean | string]) => { (globalThis as any)[name] = on; };
  await page.evaluate(set, [name, on]);
  await (await worker(page)).evaluate(set, [name, on]);
}

/** A note's record in this page's database, and its pending change. */
async function stored(page: Page, id: string) {
  return page.evaluate(async (id) => {
    const request = <T>(r: IDBRequest<T>) => new Promise<T>((resolve, reject) => {
      r.onsuccess = () => resolve(r.result);
      r.onerror = () => reject(r.error);
    });
    const info = (await indexedDB.databases()).find((d) => d.name?.startsWith('notesync-'));
    const db = await request(indexedDB.open(info!.name!));
    const tx = db.transaction(['notes', 'outbox'], 'readonly');
    const [note, pending] = await Promise.all([
      request(tx.objectStore('notes').get(id)),
      request(tx.objectStore('outbox').get(id)),
    ]);
    db.close();
    return { body: note?.body as string | undefined, pending: pending !== undefined };
  }, id);
}

test('a full disk is shown clearly, the text is kept, and retry saves it', async ({ page }) => {
  const app = new NotesApp(page);
  await app.open();
  await app.create('Trip', 'passport');

  await fault(page, '__notesyncFailPut', true);
  await app.body.pressSequentially(', tickets');
  await expect(app.storageError).toBeVisible();
  await expect(app.storageError).toContainText('run out of storage space');
  await expect(app.storageError).toContainText('nothing is lost');
  await expect(app.saveState).toHaveText('Not saved yet');
  await expect(app.body).toHaveValue('passport, tickets');

  await fault(page, '__notesyncFailPut', false);
  await page.getByRole('button', { name: 'Retry saving' }).click();
  await expect(app.storageError).toBeHidden();
  await app.expectSaved();

  await app.reload();
  await app.item('Trip').click();
  await expect(app.body).toHaveValue('passport, tickets');
});

test('a save refused half-way commits none of it, and retry saves all of it', async ({ page }) => {
  const app = new NotesApp(page);
  await app.open();
  await app.create('Half', 'kept');
  await app.expectSaved();
  const id = (await app.item('Half').getAttribute('data-note-id'))!;

  // The note's own write is made, then its pending change is refused: were
  // the first committed alone, the edit would be stored but never synced.
  await fault(page, '__notesyncFailPutOn', 'outbox');
  await app.body.pressSequentially(' more');
  await expect(app.storageError).toBeVisible();
  await expect(app.body).toHaveValue('kept more');
  expect((await stored(page, id)).body).toBe('kept');

  await fault(page, '__notesyncFailPutOn', false);
  await page.getByRole('button', { name: 'Retry saving' }).click();
  await expect(app.storageError).toBeHidden();
  await app.expectSaved();
  await expect.poll(async () => (await stored(page, id)).body).toBe('kept more');
});

test('text typed while storage is full survives a reload through the recovery copy', async ({ page }) => {
  const app = new NotesApp(page);
  await app.open();
  await app.create('Draft', 'start');
  await fault(page, '__notesyncFailPut', true);
  await app.body.pressSequentially(' unsaved');
  await expect(app.storageError).toBeVisible();

  // The page is reloaded while IndexedDB still refuses writes would be a new
  // page without the fault; the recovery copy must bring the text back.
  await app.reload();
  await app.item('Draft').click();
  await expect(app.body).toHaveValue('start unsaved');
  await app.expectSaved();
  await app.reload();
  await app.item('Draft').click();
  await expect(app.body).toHaveValue('start unsaved');
});

test('a database closed by the browser is reopened and the edit saved', async ({ page }) => {
  const app = new NotesApp(page);
  await app.open();
  await app.create('Reopen', 'before');
  const saver = await worker(page);
  // Until the worker has saved an edit, the fault below could meet nothing.
  await untilTheWorkerSaves(app, saver);
  await saver.evaluate(() => ((globalThis as any).__notesyncCloseOnce = true));
  await app.body.pressSequentially(' after');
  await app.expectSaved();
  await expect(app.storageError).toBeHidden();
  // The worker's save met the closed connection, reopened it and saved.
  expect(await saver.evaluate(() => (globalThis as any).__notesyncCloseOnce)).toBe(false);

  await app.reload();
  await app.item('Reopen').click();
  await expect(app.body).toHaveValue('before after');
});

test('edits are saved by the worker while it runs, and by the page once it stopped', async ({ page }) => {
  const app = new NotesApp(page);
  await app.open();
  await app.create('Where', 'one');
  await app.expectSaved();
  const saver = await worker(page);
  // Counted from when the worker saves: the page saves its edits itself
  // until its worker is ready, which on a busy machine can outlast the
  // note's creation.
  await untilTheWorkerSaves(app, saver);
  const writes = async () => ({
    page: await page.evaluate(() => (globalThis as any).__notesyncNoteWrites),
    worker: await saver.evaluate(() => (globalThis as any).__notesyncNoteWrites),
  });
  const before = await writes();
  await app.body.pressSequentially(' two');
  await app.expectSaved();
  const typed = await writes();
  expect(typed.page).toBe(before.page);
  expect(typed.worker).toBeGreaterThan(before.worker);

  // A frozen tab stops its worker (tabs.spec.ts); edits go on being saved.
  await page.evaluate(() => document.dispatchEvent(new Event('freeze')));
  await expect.poll(() => page.workers().length).toBe(0);
  await app.body.pressSequentially(' three');
  await app.expectSaved();
  expect(await page.evaluate(() => (globalThis as any).__notesyncNoteWrites)).toBeGreaterThan(typed.page);

  await app.reload();
  await app.item('Where').click();
  await expect(app.body).toHaveValue('one two three');
});

test('a recovery copy older than the stored note is merged with it, never written over it', async ({ page, browser }) => {
  // Two devices on a debug build: more than the default.
  test.setTimeout(120_000);
  const app = new NotesApp(page);
  const name = uniqueName('journal');
  await app.signUp(name);
  await app.create('Shared', 'first\nmiddle\nlast');
  await app.expectSynced();
  const other = new NotesApp(await (await browser.newContext()).newPage());
  await other.signIn(name);
  await other.syncNow();
  await expect(other.item('Shared')).toHaveCount(1);

  // This device types, but its edit cannot be stored: the text is only on
  // the page and in the recovery copy.
  await fault(page, '__notesyncFailPutOn', 'outbox');
  await app.item('Shared').click();
  await app.body.press('End');
  await app.body.pressSequentially(' mine');
  await expect(app.storageError).toBeVisible();

  // Meanwhile the other device changes the first line; this device's sync
  // stores that newer copy (a pulled note needs no outbox write).
  await other.item('Shared').click();
  await other.body.press('Control+Home');
  await other.body.press('Shift+End');
  await other.body.pressSequentially('FIRST');
  await other.expectSynced();
  await app.syncNow();
  await expect.poll(async () => (await stored(page, (await app.item('Shared').getAttribute('data-note-id'))!)).body).toBe('FIRST\nmiddle\nlast');

  // Reopened, the recovery copy is merged with the newer copy: both edits.
  await app.reload();
  await app.item('Shared').click();
  await expect(app.body).toHaveValue('FIRST\nmiddle\nlast mine');
  await app.expectSynced();
  await other.syncNow();
  await other.item('Shared').click();
  await expect(other.body).toHaveValue('FIRST\nmiddle\nlast mine');
});
