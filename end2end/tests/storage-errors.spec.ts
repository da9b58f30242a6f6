import { test, expect } from '@playwright/test';
import { NotesApp } from '../fixtures/app';


// Fault injection in the page: IndexedDB calls fail on demand, exactly as the
// browser fails them (a DOMException with the real name).
test.beforeEach(async ({ page }) => {
  await page.addInitScript(() => {
    const w = window as any;
    const put = IDBObjectStore.prototype.put;
    IDBObjectStore.prototype.put = function (this: IDBObjectStore, ...args: any[]) {
      if (w.__notesyncFailPut) {
        throw new DOMException('Simulated: the quota has been exceeded.', 'QuotaExceededError');
      }
      return (put as any).apply(this, args);
    } as any;
    const transaction = IDBDatabase.prototype.transaction;
    IDBDatabase.prototype.transaction = function (this: IDBDatabase, ...args: any[]) {
      if (w.__notesyncCloseOnce) {
        w.__notesyncCloseOnce = false;
        throw new DOMException('The database connection is closing.', 'InvalidStateError');
      }
      return (transaction as any).apply(this, args);
    } as any;
  });
});

test('a full disk is shown clearly, the text is kept, and retry saves it', async ({ page }) => {
  const app = new NotesApp(page);
  await app.open();
  await app.create('Trip', 'passport');

  await page.evaluate(() => ((window as any).__notesyncFailPut = true));
  await app.body.pressSequentially(', tickets');
  await expect(app.storageError).toBeVisible();
  await expect(app.storageError).toContainText('run out of storage space');
  await expect(app.storageError).toContainText('nothing is lost');
  await expect(app.saveState).toHaveText('Not saved yet');
  await expect(app.body).toHaveValue('passport, tickets');

  await page.evaluate(() => ((window as any).__notesyncFailPut = false));
  await page.getByRole('button', { name: 'Retry saving' }).click();
  await expect(app.storageError).toBeHidden();
  await app.expectSaved();

  await app.reload();
  await app.item('Trip').click();
  await expect(app.body).toHaveValue('passport, tickets');
});

test('text typed while storage is full survives a reload through the recovery copy', async ({ page }) => {
  const app = new NotesApp(page);
  await app.open();
  await app.create('Draft', 'start');
  await page.evaluate(() => ((window as any).__notesyncFailPut = true));
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
  await page.evaluate(() => ((window as any).__notesyncCloseOnce = true));
  await app.body.pressSequentially(' after');
  await app.expectSaved();
  await expect(app.storageError).toBeHidden();
  expect(await page.evaluate(() => (window as any).__notesyncCloseOnce)).toBe(false);

  await app.reload();
  await app.item('Reopen').click();
  await expect(app.body).toHaveValue('before after');
});
