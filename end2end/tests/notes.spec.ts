import { test, expect } from '@playwright/test';
import { NotesApp } from '../fixtures/app';


test('a fresh profile shows the empty state', async ({ page }) => {
  const app = new NotesApp(page);
  await app.open();
  await expect(app.empty).toContainText('No notes yet');
  await expect(app.items).toHaveCount(0);
});

test('create a note, then it survives a reload', async ({ page }) => {
  const app = new NotesApp(page);
  await app.open();
  await app.create('Groceries', 'milk\neggs\nbread');
  await expect(app.item('Groceries')).toContainText('milk eggs bread');

  await app.reload();
  await expect(app.items).toHaveCount(1);
  await app.item('Groceries').click();
  await expect(app.title).toHaveValue('Groceries');
  await expect(app.body).toHaveValue('milk\neggs\nbread');
});

test('edits save as you type and the edited note moves to the top', async ({ page }) => {
  const app = new NotesApp(page);
  await app.open();
  await app.create('First', 'one');
  await app.create('Second', 'two');
  expect(await app.titles()).toEqual(['Second', 'First']);

  await app.item('First').click();
  await expect(app.title).toHaveValue('First');
  await app.body.press('End');
  await app.body.pressSequentially(' more');
  await app.title.fill('First, edited');
  await app.expectSaved();
  await expect.poll(() => app.titles()).toEqual(['First, edited', 'Second']);

  await app.reload();
  expect(await app.titles()).toEqual(['First, edited', 'Second']);
  await app.item('First, edited').click();
  await expect(app.body).toHaveValue('one more');
});

test('delete removes the note for good', async ({ page }) => {
  const app = new NotesApp(page);
  await app.open();
  await app.create('Keep', 'stays');
  await app.create('Drop', 'goes');
  await app.item('Drop').click();
  await app.deleteButton.click();
  await expect(app.item('Drop')).toHaveCount(0);
  // The neighbour is selected after a delete.
  await expect(app.title).toHaveValue('Keep');
  await app.expectSaved();

  await app.reload();
  expect(await app.titles()).toEqual(['Keep']);
  await app.item('Keep').click();
  await app.deleteButton.click();
  await expect(app.empty).toBeVisible();
  await app.reload();
  await expect(app.empty).toBeVisible();
});

test('keyboard only: Alt+N creates a note and focus moves through the editor', async ({ page }) => {
  const app = new NotesApp(page);
  await app.open();
  await page.keyboard.press('Alt+N');
  await expect(app.title).toBeFocused();
  await page.keyboard.type('Typed title');
  await page.keyboard.press('Tab');
  await expect(app.body).toBeFocused();
  await page.keyboard.type('typed body');
  await app.expectSaved();
  await app.reload();
  await expect(app.item('Typed title')).toContainText('typed body');
});

test('the sync worker starts, reads IndexedDB and answers; keystrokes coalesce into one change', async ({ page }) => {
  const app = new NotesApp(page);
  await app.open();
  await expect(app.workerStatus).toContainText('Sync worker running · 0 notes stored · 0 changes waiting to sync');
  // Offline, so the outbox is counted before any push empties it.
  await page.context().setOffline(true);
  await app.create('Coalesced', 'many keystrokes, one pending change');
  // Dozens of keystrokes in title and body, yet exactly one outbox entry.
  await expect(app.workerStatus).toContainText('1 note stored · 1 change waiting to sync');
  await app.create('Another', 'x');
  await expect(app.workerStatus).toContainText('2 notes stored · 2 changes waiting to sync');
});

test('closing the tab right after typing loses nothing', async ({ context }) => {
  const first = await context.newPage();
  const app = new NotesApp(first);
  await app.open();
  await app.create('Journal', 'saved part');
  await app.body.pressSequentially(' and the last words');
  // Close at once, inside the save pause: no waiting for "Saved".
  await first.close();

  const second = await context.newPage();
  const again = new NotesApp(second);
  await again.open();
  await again.item('Journal').click();
  await expect(again.body).toHaveValue('saved part and the last words');
  await again.expectSaved();
});
