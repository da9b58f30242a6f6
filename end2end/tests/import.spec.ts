import { test, expect, type Browser, type Page } from '@playwright/test';
import { readFileSync } from 'node:fs';
import { NotesApp, device } from '../fixtures/app';

function notesFile(notes: unknown) {
  return { name: 'notes.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(notes)) };
}

/**
 * Imports `notes` on a new device and waits until all are stored and synced,
 * then opens a second device and waits until it has them all.
 */
async function importThenReachAnother(browser: Browser, notes: { title: string; body: string }[]) {
  const stored = `${notes.length} notes stored · 0 changes waiting to sync`;
  const a = await device(browser);
  await a.app.expectSynced();
  await a.app.page.locator('#import-file').setInputFiles(notesFile(notes));
  await expect(a.app.importStatus).toHaveText(`Imported ${notes.length} notes`);
  await a.app.expectSynced();
  await expect(a.app.workerStatus).toContainText(stored);

  const b = await device(browser);
  await b.app.expectSynced();
  await expect(b.app.workerStatus).toContainText(stored);
  return { a, b };
}

test('importing a notes file stores every note, keeps them over a reload and syncs them', async ({ page }) => {
  const app = new NotesApp(page);
  await app.open();
  await app.expectSynced();
  await page.locator('#import-file').setInputFiles(notesFile([
    { title: 'Imported one', body: 'first body', tags: ['a', 'b'] },
    { title: 'Imported two', body: 'second body' },
    { title: 'Imported three', body: 'third\nbody', tags: [] },
  ]));
  await expect(page.getByTestId('import-status')).toHaveText('Imported 3 notes');
  await expect(app.items).toHaveCount(3);
  await expect(app.item('Imported two')).toContainText('second body');
  // Each imported note is one pending change, pushed like a typed note.
  await app.expectSynced();
  await expect(app.workerStatus).toContainText('3 notes stored · 0 changes waiting to sync');

  await app.reload();
  await expect(app.items).toHaveCount(3);
  await app.item('Imported three').click();
  await expect(app.body).toHaveValue('third\nbody');
});

test('a file with one bad note imports nothing and says which note is wrong', async ({ page }) => {
  const app = new NotesApp(page);
  await app.open();
  await page.locator('#import-file').setInputFiles(notesFile([
    { title: 'fine', body: 'ok' },
    { title: 'x'.repeat(2000), body: 'title over the 1 KiB limit' },
  ]));
  await expect(page.getByTestId('import-status')).toContainText('Note 2 of the file cannot be imported');
  await expect(app.empty).toBeVisible();

  await page.locator('#import-file').setInputFiles({ name: 'notes.json', mimeType: 'application/json', buffer: Buffer.from('not json') });
  await expect(page.getByTestId('import-status')).toContainText('This file is not a notes file');
  await app.reload();
  await expect(app.empty).toBeVisible();
});

test('importing an older export never reverts newer edits, nor brings deleted notes back unsaid', async ({ page }) => {
  const app = new NotesApp(page);
  await app.open();
  await app.create('Kept', 'first version');
  await app.create('Gone', 'deleted after the export');
  await app.expectSaved();
  const [download] = await Promise.all([page.waitForEvent('download'), page.locator('#export-json').click()]);
  const exported = readFileSync((await download.path())!);

  await app.item('Kept').click();
  await app.body.press('End');
  await app.body.pressSequentially(', then edited');
  await app.expectSaved();
  await app.item('Gone').click();
  await app.deleteButton.click();
  await expect(app.item('Gone')).toHaveCount(0);

  await page.locator('#import-file').setInputFiles({ name: 'older.json', mimeType: 'application/json', buffer: exported });
  await expect(app.importStatus).toContainText('kept 1 note newer here than in the file');
  await expect(app.importStatus).toContainText('left 1 note deleted here since the file was made');
  expect(await app.titles()).toEqual(['Kept']);
  await app.item('Kept').click();
  await expect(app.body).toHaveValue('first version, then edited');
  await app.reload();
  expect(await app.titles()).toEqual(['Kept']);
  await app.item('Kept').click();
  await expect(app.body).toHaveValue('first version, then edited');
});

test('a file with a byte-order mark imports, and one holding an id twice says so', async ({ page }) => {
  const app = new NotesApp(page);
  await app.open();
  const id = '01937c8e-0000-7000-8000-0000000000aa';
  const json = JSON.stringify([
    { id, title: 'Twice', body: 'older copy', updated_at: 1_700_000_000_000 },
    { id, title: 'Twice', body: 'newer copy', updated_at: 1_700_000_100_000 },
  ]);
  const buffer = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(json)]);
  await page.locator('#import-file').setInputFiles({ name: 'bom.json', mimeType: 'application/json', buffer });
  await expect(app.importStatus).toHaveText(
    'Imported 1 note; the file holds 1 more copy of an id it already had (the latest copy was used)',
  );
  await app.item('Twice').click();
  await expect(app.body).toHaveValue('newer copy');
});

test('a large import is pushed in batches and every note reaches another device', async ({ browser }) => {
  // 1,200 notes: two pushes (500 first, then the rest: a push that fits
  // whole lets the next read four times more), each settled with one range
  // delete of the outbox, and a download of more than one page on the other
  // device.
  const notes = Array.from({ length: 1200 }, (_, i) => ({ title: `Bulk ${i}`, body: `body of note ${i}` }));
  const { a, b } = await importThenReachAnother(browser, notes);
  await b.app.search.fill('Bulk 1199');
  await expect(b.app.item('Bulk 1199')).toContainText('body of note 1199');
  await a.context.close();
  await b.context.close();
});

test('an import of large notes is pushed in requests the server takes and arrives whole', async ({ browser }) => {
  // 12 notes of 900 KB: 11 MB of JSON, over the server's 8 MiB for one
  // request, so the push is split by size; the other device's download is
  // split by the pages' 8 MiB of text.
  const line = 'a line of a long note\n';
  const body = (i: number) => `${i}\n${line.repeat(41_000)}end of note ${i}`;
  const notes = Array.from({ length: 12 }, (_, i) => ({ title: `Long ${i}`, body: body(i) }));
  const { a, b } = await importThenReachAnother(browser, notes);
  await b.app.item('Long 11').click();
  const shown = await b.app.body.inputValue();
  expect(shown.length).toBe(body(11).length);
  expect(shown.endsWith('end of note 11')).toBe(true);
  await a.context.close();
  await b.context.close();
});

/** The URLs of the page's requests under /pkg/ starting with `prefix`, as they are made. */
function requestsFor(page: Page, prefix: string): string[] {
  const urls: string[] = [];
  page.on('request', (r) => {
    if (new URL(r.url()).pathname.startsWith(`/pkg/${prefix}`)) urls.push(r.url());
  });
  return urls;
}

test.describe('code loaded on first use', () => {
  // page.route does not see requests a service worker answers.
  test.use({ serviceWorkers: 'block' });

  test('is not fetched to open the app, and a failed fetch is a message that loses nothing', async ({ page }) => {
    const chunks = requestsFor(page, 'split_');
    const app = new NotesApp(page);
    await app.open();
    await app.create('Kept', 'typed before the failed import');
    await app.expectSaved();
    expect(chunks, 'opening the app and typing fetch no split chunk').toEqual([]);

    await page.route('**/pkg/split_*.wasm', (route) => route.abort('internetdisconnected'));
    const file = notesFile([{ title: 'Imported', body: 'from the file' }]);
    await page.locator('#import-file').setInputFiles(file);
    await expect(app.importStatus).toContainText('The import and export code could not be loaded');
    await page.locator('#export-zip').click();
    await expect(app.importStatus).toContainText('Nothing was exported: The import and export code could not be loaded');
    expect(await app.titles()).toEqual(['Kept']);
    // The page still works: typing is saved as before.
    await app.body.pressSequentially(', still here');
    await app.expectSaved();

    // The next use fetches again, and this time it loads.
    await page.unroute('**/pkg/split_*.wasm');
    await page.locator('#import-file').setInputFiles(file);
    await expect(app.importStatus).toHaveText('Imported 1 note');
    expect(chunks.length, 'the chunk was fetched once the route was gone').toBeGreaterThan(0);
    expect((await app.titles()).sort()).toEqual(['Imported', 'Kept']);
    await app.reload();
    await app.item('Kept').click();
    await expect(app.body).toHaveValue('typed before the failed import, still here');
  });

  test('the markdown preview renders once its code loads, and says so when it cannot', async ({ page }) => {
    const chunks = requestsFor(page, 'split_markdown');
    const app = new NotesApp(page);
    await app.open();
    await app.create('Preview me', '# Title\n\nSome *text*');
    await app.expectSaved();
    expect(chunks, 'no preview code before the preview opens').toEqual([]);

    await page.route('**/pkg/split_markdown*.wasm', (route) => route.abort('internetdisconnected'));
    await app.previewToggle.click();
    await expect(page.locator('.preview-error')).toContainText('The preview could not be loaded');
    await expect(app.preview.locator('h1')).toHaveCount(0);
    await app.previewToggle.click();
    await expect(app.body).toHaveValue('# Title\n\nSome *text*');

    await page.unroute('**/pkg/split_markdown*.wasm');
    await app.previewToggle.click();
    await expect(app.preview.locator('h1')).toHaveText('Title');
    await expect(app.preview.locator('em')).toHaveText('text');
    await expect(page.locator('.preview-error')).toHaveCount(0);
    await expect(app.preview).toHaveAttribute('aria-busy', 'false');
  });
});
