import { test, expect, type Page } from '@playwright/test';
import { NotesApp, device, uniqueName } from '../fixtures/app';

// What a person typed stays theirs, whole: across accounts in one browser,
// a database deleted under the open app, a record the app cannot read, a
// note that cannot be saved, and a newer build upgrading the database.

/** Waits until a service worker controls the page, so it reloads offline. */
async function controlled(page: Page) {
  await page.waitForFunction(() => navigator.serviceWorker?.controller != null, null, {
    timeout: 30_000,
  });
}

/** The name of this page's notes database. */
async function databaseName(page: Page): Promise<string> {
  return page.evaluate(async () => {
    const info = (await indexedDB.databases()).find((d) => d.name?.startsWith('notesync-'));
    return info!.name!;
  });
}

test('a tab of one account never syncs into another signed in meanwhile, and syncs once its account is back', async ({ browser }) => {
  // Several browsers and sign-ins on a debug build: more than the default.
  test.setTimeout(180_000);
  const context = await browser.newContext();
  const u1 = uniqueName('uone');
  const u2 = uniqueName('utwo');
  const tab1 = new NotesApp(await context.newPage());
  await tab1.signUp(u1);
  await tab1.create('U1 synced', 'on the server');
  await tab1.expectSynced();
  const tab2 = new NotesApp(await context.newPage());
  await tab2.page.goto('/');
  await tab2.waitLoaded();
  await expect(tab2.item('U1 synced')).toHaveCount(1);

  // U1 signs out in tab 1; tab 2 still shows U1's notes, and U1 writes on.
  await tab1.page.locator('#sign-out').click();
  await tab1.page.waitForURL((url) => url.pathname === '/signin');
  // The sign-out removed U1's database under tab 2, which writes back what
  // it shows.
  await expect(tab2.page.getByTestId('notice')).toContainText('You signed out in another tab');
  await tab2.create('U1 secret', 'typed in the other tab');

  // U2 signs up in tab 1 of the same browser, and writes.
  await tab1.signUp(u2);
  await tab1.create('U2 note', 'only for u2');
  await tab1.expectSynced();

  // Tab 2 goes on typing: it says plainly whose it is, and syncs nothing.
  await tab2.item('U1 secret').click();
  await tab2.body.press('End');
  await tab2.body.pressSequentially(' and more');
  await tab2.expectSaved();
  await expect(tab2.page.getByTestId('other-account')).toContainText(
    `This tab belongs to ${u1}; ${u2} signed in elsewhere in this browser`,
    { timeout: 20_000 },
  );
  await expect(tab2.page.getByTestId('other-account').getByRole('link', { name: `Sign in as ${u1}` })).toBeVisible();
  // Long enough for a sync attempt of either tab's.
  await tab2.page.waitForTimeout(3_000);
  await tab1.syncNow();
  expect(await tab1.titles()).toEqual(['U2 note']);
  expect((await tab2.titles()).sort()).toEqual(['U1 secret', 'U1 synced']);
  const u2Elsewhere = new NotesApp(await (await browser.newContext()).newPage());
  await u2Elsewhere.signIn(u2);
  await u2Elsewhere.syncNow();
  expect(await u2Elsewhere.titles()).toEqual(['U2 note']);

  // U1 signs back in: tab 2 syncs what it kept, and nothing of U2's.
  await tab1.page.locator('#sign-out').click();
  await tab1.page.waitForURL((url) => url.pathname === '/signin');
  await tab1.signIn(u1);
  await expect(tab2.page.getByTestId('other-account')).toBeHidden({ timeout: 10_000 });
  const u1Elsewhere = new NotesApp(await (await browser.newContext()).newPage());
  await u1Elsewhere.signIn(u1);
  await expect(async () => {
    await u1Elsewhere.syncNow();
    await expect(u1Elsewhere.item('U1 secret')).toContainText('typed in the other tab and more', { timeout: 1_000 });
  }).toPass({ timeout: 30_000 });
  expect((await u1Elsewhere.titles()).sort()).toEqual(['U1 secret', 'U1 synced']);
  await context.close();
});

test('the server refuses a tab\'s sync once the browser\'s session is another account\'s, and the tab says so', async ({ browser }) => {
  // Two devices on a debug build: more than the default.
  test.setTimeout(120_000);
  const u1 = uniqueName('uone');
  const u2 = uniqueName('utwo');
  const browserOfU1 = await browser.newContext();
  const tab = new NotesApp(await browserOfU1.newPage());
  await tab.signUp(u1);
  await tab.create('U1 before', 'synced');
  await tab.expectSynced();
  const browserOfU2 = await browser.newContext();
  const u2Device = new NotesApp(await browserOfU2.newPage());
  await u2Device.signUp(u2);
  await u2Device.create('U2 own', 'only for u2');
  await u2Device.expectSynced();

  // The browser's session becomes U2's without any tab hearing of it: only
  // the server can tell.
  await browserOfU1.clearCookies();
  await browserOfU1.addCookies(await browserOfU2.cookies());
  await tab.create('U1 after', 'must never reach u2');
  await expect(tab.page.getByTestId('other-account')).toContainText(
    `This tab belongs to ${u1}; ${u2} signed in elsewhere in this browser`,
    { timeout: 20_000 },
  );
  // Long enough for another sync attempt.
  await tab.page.waitForTimeout(3_000);
  await u2Device.syncNow();
  expect(await u2Device.titles()).toEqual(['U2 own']);
  expect((await tab.titles()).sort()).toEqual(['U1 after', 'U1 before']);
  await browserOfU1.close();
  await browserOfU2.close();
});

test('signing in as someone else while an account is signed in is an explicit switch', async ({ page }) => {
  const app = new NotesApp(page);
  const ann = uniqueName('ann');
  const bob = uniqueName('bob');
  await app.signUp(bob);
  await page.locator('#sign-out').click();
  await page.waitForURL((url) => url.pathname === '/signin');
  await app.signUp(ann);

  await page.goto('/signin');
  await expect(page.locator('.auth-form[data-ready=true]')).toBeVisible();
  await expect(page.getByTestId('signed-in-here')).toContainText(`${ann} is signed in on this browser`);
  await page.locator('#account-name').fill(bob);
  await page.locator('#account-password').fill('correct horse battery');
  await page.locator('.auth-form button[type=submit]').click();
  // Not yet: the form asks to confirm the switch.
  await expect(page.getByTestId('confirm-switch')).toContainText(`sign ${ann} out of this browser and continue as ${bob}`);
  await expect(page).toHaveURL(/\/signin$/);
  await page.locator('.auth-form button[type=submit]', { hasText: 'Switch account' }).click();
  await page.waitForURL((url) => url.pathname === '/');
  await expect(page.getByTestId('account-name')).toHaveText(bob);
});

test('signing out pushes first, and names the notes it would lose', async ({ page, context }) => {
  const app = new NotesApp(page);
  await app.open();
  await app.expectSynced();
  // Offline, the last push cannot reach the server: the warning names the note.
  await context.setOffline(true);
  await app.create('Only here', 'not on the server');
  let asked = '';
  page.once('dialog', async (dialog) => {
    asked = dialog.message();
    await dialog.dismiss();
  });
  await page.locator('#sign-out').click();
  await expect.poll(() => asked, { timeout: 20_000 }).toContain('“Only here”');
  await expect(page).toHaveURL(/\/$/);
  await expect(page.locator('#sign-out')).toHaveText('Sign out');

  // Online, the last push sends it, and signing out asks nothing.
  await context.setOffline(false);
  await app.body.pressSequentially(' yet');
  await app.expectSaved();
  let askedAgain = '';
  page.once('dialog', async (dialog) => {
    askedAgain = dialog.message();
    await dialog.dismiss();
  });
  await page.locator('#sign-out').click();
  await page.waitForURL((url) => url.pathname === '/signin', { timeout: 30_000 });
  expect(askedAgain).toBe('');
});

test('a database deleted under an offline tab is written back: the unsynced note survives a reload and syncs', async ({ browser }) => {
  // Two devices on a debug build: more than the default.
  test.setTimeout(120_000);
  const a = await device(browser);
  const { app, context } = a;
  await app.create('Synced before', 'on the server');
  await app.expectSynced();
  await controlled(app.page);
  await context.setOffline(true);
  await app.create('Offline note', 'typed offline');

  // The database is deleted under the open app, as clearing the site's data
  // from another page would: the app lets go of it at once.
  const name = await databaseName(app.page);
  const outcome = await app.page.evaluate(
    (name) =>
      new Promise<string>((resolve) => {
        const request = indexedDB.deleteDatabase(name);
        request.onsuccess = () => resolve('deleted');
        request.onerror = () => resolve(`failed: ${request.error?.name}`);
        setTimeout(() => resolve('still blocked after 10 s'), 10_000);
      }),
    name,
  );
  expect(outcome).toBe('deleted');
  await expect(app.page.getByTestId('notice')).toContainText('written back');
  await app.body.pressSequentially(', then more');
  await app.expectSaved();

  await app.reload();
  await app.item('Offline note').click();
  await expect(app.body).toHaveValue('typed offline, then more');
  await expect(app.item('Synced before')).toHaveCount(1);

  await context.setOffline(false);
  await app.expectSynced();
  await expect(app.workerStatus).toContainText('2 notes stored · 0 changes waiting to sync');
  const b = await device(browser);
  await b.app.syncNow();
  await expect(b.app.item('Offline note')).toContainText('typed offline, then more');
  expect((await b.app.titles()).sort()).toEqual(['Offline note', 'Synced before']);
  await a.context.close();
  await b.context.close();
});

test('one unreadable stored record hides no other note, and is reported as a read', async ({ page }) => {
  // Two devices on a debug build: more than the default.
  test.setTimeout(120_000);
  const app = new NotesApp(page);
  await app.open();
  await app.create('Good one', 'first');
  await app.create('Good two', 'second');
  await app.expectSaved();
  // A record no build can read back: a number past what JSON carries into
  // JavaScript exactly.
  const name = await databaseName(page);
  await page.evaluate(
    (name) =>
      new Promise<void>((resolve, reject) => {
        const open = indexedDB.open(name);
        open.onsuccess = () => {
          const db = open.result;
          const tx = db.transaction(['notes', 'outbox'], 'readwrite');
          // A pending change no build can read, in push order.
          tx.objectStore('outbox').put({
            note_id: '01937c8e-0000-7000-8000-000000000002',
            first_edit_at: 1,
            mutation_id: 'not an id',
          });
          tx.objectStore('notes').put({
            id: '01937c8e-0000-7000-8000-000000000001',
            title: 'Bad',
            body: '',
            tags: [],
            created_at: 18446744073709551615,
            updated_at: 1,
            rev: 0,
            deleted: false,
            pinned: false,
          });
          tx.oncomplete = () => {
            db.close();
            resolve();
          };
          tx.onerror = () => reject(tx.error);
        };
        open.onerror = () => reject(open.error);
      }),
    name,
  );
  await app.reload();
  expect((await app.titles()).sort()).toEqual(['Good one', 'Good two']);
  await expect(page.getByTestId('notice')).toContainText('could not be read');
  await expect(page.getByTestId('notice')).toContainText('01937c8e-0000-7000-8000-000000000001');
  await expect(app.storageError).toBeHidden();
  await app.item('Good one').click();
  await app.body.pressSequentially(' still saves');
  await app.expectSaved();
  // Sync reads the pending changes: the unreadable one is skipped and
  // named, and the others reach the server.
  await expect(page.getByTestId('notice')).toContainText('2 stored records could not be read', { timeout: 20_000 });
  await expect(page.getByTestId('notice')).toContainText('01937c8e-0000-7000-8000-000000000002');
  const other = await (await page.context().browser()!.newContext()).newPage();
  const elsewhere = new NotesApp(other);
  await elsewhere.signIn((await page.getByTestId('account-name').textContent())!);
  await elsewhere.syncNow();
  await expect(elsewhere.item('Good one')).toContainText('first still saves');
});

test('a note that cannot be saved marks no other note unsaved, before or after a reload', async ({ page }) => {
  const app = new NotesApp(page);
  await app.open();
  await app.create('Fine', 'saved');
  await app.newNote.click();
  await app.title.fill('t'.repeat(1100));
  await expect(app.saveState).toHaveText('Not saved yet');
  await expect(app.storageError).toContainText('cannot be saved');

  await app.item('Fine').click();
  await app.body.pressSequentially(', and more');
  await expect(app.saveState).toHaveText('Saved on this device');
  await app.create('Later', 'also saved');
  await expect(app.saveState).toHaveText('Saved on this device');

  // The unsaved text comes back from the recovery copy, still unsaved; the
  // others are saved.
  await app.reload();
  await app.item('Later').click();
  await expect(app.saveState).toHaveText('Saved on this device');
  await app.item('Fine').click();
  await expect(app.body).toHaveValue('saved, and more');
  await expect(app.saveState).toHaveText('Saved on this device');
  await app.items.filter({ hasText: 'tttttttt' }).click();
  await expect(app.saveState).toHaveText('Not saved yet');
});

test('a newer build upgrading the database is not blocked: the tab lets go and asks to reload', async ({ page }) => {
  const app = new NotesApp(page);
  await app.open();
  await app.create('Before the upgrade', 'text');
  await app.expectSaved();
  const name = await databaseName(page);
  // A newer build's tab opens the database at the next schema version.
  const outcome = await page.evaluate(
    (name) =>
      new Promise<string>((resolve) => {
        indexedDB.databases().then((all) => {
          const current = all.find((d) => d.name === name)!.version!;
          const request = indexedDB.open(name, current + 1);
          request.onupgradeneeded = () => {
            request.result.createObjectStore('added_by_the_next_version');
          };
          request.onsuccess = () => {
            request.result.close();
            resolve(`upgraded to ${current + 1}`);
          };
          request.onerror = () => resolve(`failed: ${request.error?.name}`);
          setTimeout(() => resolve('still blocked after 10 s'), 10_000);
        });
      }),
    name,
  );
  expect(outcome).toMatch(/^upgraded to \d+$/);
  await expect(page.getByTestId('outdated')).toContainText('Reload this tab');
  await expect(page.getByTestId('outdated').getByRole('button', { name: 'Reload' })).toBeVisible();
  // What is typed now stays on the page and in the recovery copy.
  await app.body.pressSequentially(', typed after');
  await expect(app.body).toHaveValue('text, typed after');

  // This build cannot open the newer database: it says so rather than hang.
  await app.page.reload();
  await expect(app.storageError).toContainText('A newer version of notesync is using the notes database');
});
