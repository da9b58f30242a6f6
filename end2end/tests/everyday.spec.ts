// Everyday use (issue 8): search, tags, sorting and pins, markdown preview,
// export and import, undo of a delete, keyboard use, and the screenshots in
// the README.
import { test, expect, type Browser, type BrowserContext, type Page } from '@playwright/test';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { NotesApp, uniqueName } from '../fixtures/app';

const SCREENSHOTS = path.resolve(__dirname, '../../docs/screenshots');

/** A browser context signed in as `name` (signed up when `create`). */
async function device(browser: Browser, name: string, create: boolean): Promise<{ context: BrowserContext; app: NotesApp }> {
  const context = await browser.newContext();
  const app = new NotesApp(await context.newPage());
  if (create) {
    await app.signUp(name);
  } else {
    await app.signIn(name);
  }
  return { context, app };
}

/** The marked (highlighted) parts of the list, in order. */
async function marks(page: Page): Promise<string[]> {
  return page.locator('.note-item mark').allTextContents();
}

test('search finds notes by words of the body and of the title, offline, as you type', async ({ page, context }) => {
  const app = new NotesApp(page);
  await app.open();
  await app.create('Trip to Lisbon', 'Book the train and pack sunscreen');
  await app.create('Shopping', 'Milk, eggs, bread');
  await app.create('Recipes', 'Sourdough bread needs a starter');
  await context.setOffline(true);
  await expect(app.syncStatus).toHaveAttribute('data-state', 'offline');

  // A body word, typed letter by letter: results follow each keystroke.
  await app.search.click();
  await app.search.pressSequentially('brea');
  await expect(app.items).toHaveCount(2);
  expect((await app.titles()).sort()).toEqual(['Recipes', 'Shopping']);
  expect(await marks(page)).toEqual(['brea', 'brea']);

  // A title word, case-blind, as a prefix.
  await app.search.fill('LISB');
  await expect(app.items).toHaveCount(1);
  await expect(app.items.first().locator('.note-title mark')).toHaveText('Lisb');

  // Every word must match, in the title or the body.
  await app.search.fill('sourdough starter');
  await expect(app.items).toHaveCount(1);
  await expect(app.item('Recipes')).toBeVisible();
  await app.search.fill('sourdough lisbon');
  await expect(page.getByTestId('no-results')).toBeVisible();

  // A note edited now is found by its new words at once.
  await app.search.fill('');
  await app.item('Shopping').click();
  await app.body.pressSequentially(' and quinoa');
  await app.search.fill('quin');
  await expect(app.items).toHaveCount(1);
  await expect(app.item('Shopping')).toBeVisible();

  // Enter opens the first result; Escape clears the search.
  await app.search.fill('train');
  await app.search.press('Enter');
  await expect(app.title).toHaveValue('Trip to Lisbon');
  await app.search.press('Escape');
  await expect(app.items).toHaveCount(3);
});

test('tags: added and removed in the editor, the list filtered by tag; sorting and pinning', async ({ page }) => {
  const app = new NotesApp(page);
  await app.open();
  await app.create('Banana bread', 'bake on sunday');
  await app.addTags('cooking', 'home');
  await app.create('Apple tax form', 'due in april');
  await app.addTags('home');
  await app.create('Cherry notes', 'nothing tagged');

  await app.tagFilter.selectOption('cooking');
  await expect(app.items).toHaveCount(1);
  await expect(app.item('Banana bread')).toBeVisible();
  await app.tagFilter.selectOption('home');
  await expect(app.items).toHaveCount(2);

  // Removing a tag takes the note out of that tag's list.
  await app.item('Apple tax form').click();
  await page.getByRole('button', { name: 'Remove tag home' }).click();
  await app.expectSaved();
  await expect(app.items).toHaveCount(1);
  await app.tagFilter.selectOption('');
  await expect(app.items).toHaveCount(3);

  // Tags and the filter survive a reload (they are stored with the note).
  await app.reload();
  await app.tagFilter.selectOption('cooking');
  await expect(app.items).toHaveCount(1);
  await app.tagFilter.selectOption('');

  await app.sort.selectOption('title');
  expect(await app.titles()).toEqual(['Apple tax form', 'Banana bread', 'Cherry notes']);
  await app.sort.selectOption('created');
  expect(await app.titles()).toEqual(['Cherry notes', 'Apple tax form', 'Banana bread']);

  // A pinned note comes first in every order, and stays pinned after a reload.
  await app.item('Banana bread').click();
  await app.pin.click();
  await expect(app.pin).toHaveAttribute('aria-pressed', 'true');
  await app.expectSaved();
  await app.sort.selectOption('title');
  expect(await app.titles()).toEqual(['Banana bread', 'Apple tax form', 'Cherry notes']);
  await app.reload();
  expect((await app.titles())[0]).toBe('Banana bread');
});

test('the markdown preview renders the text and never runs what it contains', async ({ page }) => {
  const app = new NotesApp(page);
  await app.open();
  let alerted = false;
  page.on('dialog', async (dialog) => {
    alerted = true;
    await dialog.dismiss();
  });
  await app.newNote.click();
  await app.title.fill('Markdown');
  await app.body.fill('# Heading\n\nSome **bold** text.\n\n<img src=x onerror="alert(1)">\n\n[bad](javascript:alert(1)) [good](https://example.com)');
  await app.expectSaved();
  await app.previewToggle.click();
  await expect(app.body).toBeHidden();
  await expect(app.preview.locator('h1')).toHaveText('Heading');
  await expect(app.preview.locator('strong')).toHaveText('bold');
  await expect(app.preview.locator('img')).toHaveCount(0);
  await expect(app.preview).toContainText('<img src=x onerror="alert(1)">');
  await expect(app.preview.locator('a')).toHaveCount(1);
  await expect(app.preview.locator('a')).toHaveAttribute('href', 'https://example.com');
  await expect(app.preview).toContainText('bad');
  await app.previewToggle.click();
  await expect(app.body).toBeVisible();
  expect(alerted).toBe(false);
});

test('export as JSON and as zip, then import into another person\'s fresh profile gives the same notes, once', async ({ browser }, testInfo) => {
  const a = await device(browser, uniqueName('exp'), true);
  await a.app.create('Groceries', 'milk\n- eggs\n- "bread"');
  await a.app.addTags('home');
  await a.app.pin.click();
  await a.app.expectSaved();
  await a.app.create('Ideas', '# Big\n\nA line: with a colon');
  await a.app.create('Doomed', 'deleted before the export');
  await a.app.deleteButton.click();
  await expect(a.app.items).toHaveCount(2);

  const save = async (button: string, name: string) => {
    const [download] = await Promise.all([
      a.app.page.waitForEvent('download'),
      a.app.page.locator(button).click(),
    ]);
    const file = testInfo.outputPath(name);
    await download.saveAs(file);
    return file;
  };
  const json = await save('#export-json', 'export.json');
  const zip = await save('#export-zip', 'export.zip');
  await expect(a.app.importStatus).toHaveText('Exported 2 notes to notesync-export.zip');
  const exported = JSON.parse(fs.readFileSync(json, 'utf8'));
  expect(exported.map((n: { title: string }) => n.title).sort()).toEqual(['Groceries', 'Ideas']);
  expect(fs.readFileSync(zip).subarray(0, 2).toString()).toBe('PK');

  const b = await device(browser, uniqueName('imp'), true);
  await b.app.page.locator('#import-file').setInputFiles(json);
  await expect(b.app.importStatus).toHaveText('Imported 2 notes');
  // The same notes, pinned first.
  expect(await b.app.titles()).toEqual(['Groceries', 'Ideas']);
  await b.app.item('Groceries').click();
  await expect(b.app.body).toHaveValue('milk\n- eggs\n- "bread"');
  await expect(b.app.page.locator('.tag[data-tag="home"]')).toBeVisible();
  await expect(b.app.pin).toHaveAttribute('aria-pressed', 'true');

  // The same notes again, as JSON and as the zip: nothing new.
  await b.app.page.locator('#import-file').setInputFiles(json);
  await expect(b.app.importStatus).toHaveText('Imported 0 notes, 2 already here');
  await b.app.page.locator('#import-file').setInputFiles(zip);
  await expect(b.app.importStatus).toHaveText('Imported 0 notes, 2 already here');
  await expect(b.app.items).toHaveCount(2);
  await b.app.expectSynced();
  await b.app.reload();
  await expect(b.app.items).toHaveCount(2);

  // The zip alone, into a third person's profile, gives the same notes too.
  const c = await device(browser, uniqueName('zip'), true);
  await c.app.page.locator('#import-file').setInputFiles(zip);
  await expect(c.app.importStatus).toHaveText('Imported 2 notes');
  expect(await c.app.titles()).toEqual(['Groceries', 'Ideas']);
  await c.app.item('Ideas').click();
  await expect(c.app.body).toHaveValue('# Big\n\nA line: with a colon');
  // A broken file changes nothing and says why.
  await c.app.page.locator('#import-file').setInputFiles({ name: 'x.zip', mimeType: 'application/zip', buffer: Buffer.from('PK\x03\x04broken') });
  await expect(c.app.importStatus).toContainText('This zip cannot be read');
  await expect(c.app.items).toHaveCount(2);
  for (const d of [a, b, c]) await d.context.close();
});

test('undoing a delete brings the note back on the other device too', async ({ browser }) => {
  const name = uniqueName('undo');
  const a = await device(browser, name, true);
  const b = await device(browser, name, false);
  const title = `Keep me ${Date.now()}`;
  await a.app.create(title, 'precious text');
  await a.app.expectSynced();
  await b.app.syncNow();
  await expect(b.app.item(title)).toBeVisible();

  // Deleted on A; B learns of it.
  await a.app.item(title).click();
  await a.app.deleteButton.click();
  await expect(a.app.item(title)).toHaveCount(0);
  await a.app.expectSynced();
  await b.app.syncNow();
  await expect(b.app.item(title)).toHaveCount(0);

  // Undo on A: a normal edit, synced, and the note is back on B with its text.
  await a.app.undo.click();
  await expect(a.app.item(title)).toContainText('precious text');
  await a.app.expectSynced();
  await b.app.syncNow();
  await expect(b.app.item(title)).toContainText('precious text');

  // Deleted again on A; this time restored from B's "Recently deleted",
  // which B filled from the delete it pulled.
  await a.app.item(title).click();
  await a.app.deleteButton.click();
  await a.app.expectSynced();
  await b.app.syncNow();
  await expect(b.app.item(title)).toHaveCount(0);
  await b.app.showTrash.click();
  await expect(b.app.trashItems).toHaveCount(1);
  await expect(b.app.trashItems.first()).toContainText(title);
  await b.app.page.getByRole('button', { name: `Restore ${title}` }).click();
  await expect(b.app.item(title)).toContainText('precious text');
  await b.app.expectSynced();
  await a.app.syncNow();
  await expect(a.app.item(title)).toContainText('precious text');
  await a.app.showTrash.click();
  await expect(a.app.page.getByTestId('trash-empty')).toBeVisible();
  await a.context.close();
  await b.context.close();
});

test('keyboard only: create, edit, tag, move between notes, search, delete and undo', async ({ page }) => {
  const app = new NotesApp(page);
  await app.open();
  await page.keyboard.press('Alt+N');
  await expect(app.title).toBeFocused();
  await page.keyboard.type('First');
  await page.keyboard.press('Tab');
  await expect(app.body).toBeFocused();
  await page.keyboard.type('first body');
  await page.keyboard.press('Tab');
  await expect(app.tagInput).toBeFocused();
  await page.keyboard.type('kbd');
  await page.keyboard.press('Enter');
  await expect(page.locator('.tag[data-tag="kbd"]')).toBeVisible();
  await page.keyboard.press('Alt+N');
  // Focus moves in a timer, which Chromium runs after the next frame: keys
  // sent before it would go to the tag field.
  await expect(app.title).toBeFocused();
  await page.keyboard.type('Second');
  await page.keyboard.press('Tab');
  await page.keyboard.type('second body');
  await app.expectSaved();

  // Alt+ArrowDown / Alt+ArrowUp walk the list as shown (newest first).
  await page.keyboard.press('Alt+ArrowDown');
  await expect(app.title).toHaveValue('First');
  await expect(app.item('First')).toBeFocused();
  await page.keyboard.press('Alt+ArrowUp');
  await expect(app.title).toHaveValue('Second');

  // Ctrl+K, or / outside a text field, goes to the search.
  await page.keyboard.press('Control+K');
  await expect(app.search).toBeFocused();
  await page.keyboard.type('first');
  await expect(app.items).toHaveCount(1);
  await page.keyboard.press('Enter');
  await expect(app.title).toHaveValue('First');
  await page.keyboard.press('Escape');
  await expect(app.items).toHaveCount(2);
  await app.item('First').focus();
  await page.keyboard.press('/');
  await expect(app.search).toBeFocused();

  // Alt+Delete deletes the open note; Alt+Z brings it back.
  await page.keyboard.press('Alt+Delete');
  await expect(app.items).toHaveCount(1);
  await expect(page.getByTestId('undo-toast')).toBeVisible();
  await page.keyboard.press('Alt+Z');
  await expect(app.items).toHaveCount(2);
  await expect(app.item('First')).toContainText('first body');
  await app.expectSaved();
  await app.reload();
  await expect(app.items).toHaveCount(2);
});

test('screenshots of the main screens: wide, narrow and dark', async ({ browser }) => {
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const app = new NotesApp(page);
  await app.open();
  await page.locator('#import-file').setInputFiles({
    name: 'notes.json',
    mimeType: 'application/json',
    buffer: Buffer.from(JSON.stringify([
      { title: 'Weekend in Lisbon', body: 'Train on Friday at 18:04.\n\n- pastéis de nata\n- tram 28\n- **book** the museum', tags: ['travel'], pinned: true },
      { title: 'Shopping', body: 'Milk, eggs, sourdough bread, coffee beans', tags: ['home'] },
      { title: 'Reading list', body: 'Designing Data-Intensive Applications; The Rust Programming Language', tags: ['books'] },
      { title: 'Meeting notes', body: '# Sync design\n\nDecided: pull in pages of 2,000; retries with backoff.', tags: ['work'] },
      { title: 'Recipes', body: 'Bread: 500 g flour, 350 g water, 10 g salt, starter.', tags: ['home', 'cooking'] },
    ])),
  });
  await expect(app.items).toHaveCount(5);
  await app.expectSynced();
  await app.item('Weekend in Lisbon').click();
  await page.screenshot({ path: path.join(SCREENSHOTS, 'wide.png') });

  await app.search.fill('bread');
  await expect(app.items).toHaveCount(2);
  await app.item('Recipes').click();
  await page.screenshot({ path: path.join(SCREENSHOTS, 'search.png') });
  await app.search.fill('');

  await app.item('Weekend in Lisbon').click();
  await app.previewToggle.click();
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.screenshot({ path: path.join(SCREENSHOTS, 'dark.png') });
  await app.previewToggle.click();
  await page.emulateMedia({ colorScheme: 'light' });

  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: path.join(SCREENSHOTS, 'narrow.png') });
  // Narrow: the list sits above the editor, not beside it.
  const list = await page.locator('.sidebar').boundingBox();
  const editor = await page.locator('.editor').boundingBox();
  expect(list && editor && list.y + list.height <= editor.y + 1).toBe(true);
  await page.setViewportSize({ width: 1280, height: 800 });
  const wideList = await page.locator('.sidebar').boundingBox();
  const wideEditor = await page.locator('.editor').boundingBox();
  expect(wideList && wideEditor && wideList.x + wideList.width <= wideEditor.x + 1).toBe(true);
  for (const shot of ['wide', 'search', 'dark', 'narrow']) {
    expect(fs.statSync(path.join(SCREENSHOTS, `${shot}.png`)).size).toBeGreaterThan(10_000);
  }
  await context.close();
});
