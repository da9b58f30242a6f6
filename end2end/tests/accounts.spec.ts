import { test, expect } from '@playwright/test';
import { NotesApp, PASSWORD, device, uniqueName } from '../fixtures/app';

test('without an account the app asks to sign in, and a wrong password is refused clearly', async ({ page }) => {
  const app = new NotesApp(page);
  await page.goto('/');
  await page.waitForURL((url) => url.pathname === '/signin');
  const name = uniqueName('ann');
  await app.signUp(name);
  await page.locator('#sign-out').click();
  await page.waitForURL((url) => url.pathname === '/signin');
  // Typed before hydration, the name would be lost when the form hydrates.
  await expect(page.locator('.auth-form[data-ready=true]')).toBeVisible();
  await page.locator('#account-name').fill(name);
  await page.locator('#account-password').fill('not the password');
  await page.locator('.auth-form button[type=submit]').click();
  await expect(page.getByTestId('auth-error')).toHaveText('wrong name or password');
  await expect(page).toHaveURL(/\/signin$/);
});

test('two people in two browsers never see each other\'s notes', async ({ browser }) => {
  const ann = new NotesApp(await (await browser.newContext()).newPage());
  const bob = new NotesApp(await (await browser.newContext()).newPage());
  await ann.signUp(uniqueName('ann'));
  await bob.signUp(uniqueName('bob'));
  await ann.create('Ann private', 'only for ann');
  await ann.expectSynced();
  await bob.create('Bob private', 'only for bob');
  await bob.expectSynced();
  await ann.syncNow();
  await bob.syncNow();
  expect(await ann.titles()).toEqual(['Ann private']);
  expect(await bob.titles()).toEqual(['Bob private']);
});

test('signing out and in as someone else on the same browser shows only their notes', async ({ page }) => {
  const app = new NotesApp(page);
  const ann = uniqueName('ann');
  const bob = uniqueName('bob');
  await app.signUp(ann);
  await app.create('Ann note', 'ann text');
  await app.expectSynced();
  await page.locator('#sign-out').click();
  await page.waitForURL((url) => url.pathname === '/signin');

  await app.signUp(bob);
  await expect(app.empty).toBeVisible();
  expect(await app.titles()).toEqual([]);
  await app.create('Bob note', 'bob text');
  await app.expectSynced();
  await page.locator('#sign-out').click();
  await page.waitForURL((url) => url.pathname === '/signin');

  // Ann's local data was removed at sign-out; her notes come back from the server.
  await app.signIn(ann);
  await app.syncNow();
  await expect(app.item('Ann note')).toHaveCount(1);
  expect(await app.titles()).toEqual(['Ann note']);
});

test('signing out with unsynced changes warns first, and cancelling keeps everything', async ({ page, context }) => {
  const app = new NotesApp(page);
  await app.signUp(uniqueName('cat'));
  await context.setOffline(true);
  await app.create('Unsynced', 'not on the server yet');
  let asked = '';
  page.once('dialog', async (dialog) => {
    asked = dialog.message();
    await dialog.dismiss();
  });
  await page.locator('#sign-out').click();
  await expect.poll(() => asked).toContain('have not reached the server');
  await expect(page).toHaveURL(/\/$/);
  await expect(app.item('Unsynced')).toHaveCount(1);
  await context.setOffline(false);
  await app.expectSynced();
});

test('an ended session pauses sync visibly, edits are kept, and they sync after signing in again', async ({ page, context }) => {
  const app = new NotesApp(page);
  const name = uniqueName('dan');
  await app.signUp(name);
  await app.create('Before', 'synced while signed in');
  await app.expectSynced();

  // The server no longer knows this browser (the cookie is gone, as when a
  // session expires): the next sync is refused and says so.
  await context.clearCookies();
  await app.body.pressSequentially(', then edited after the session ended');
  await app.expectSaved();
  await expect(page.getByTestId('session-ended')).toBeVisible({ timeout: 20_000 });
  await expect(app.syncStatus).toContainText('sign in again');

  await page.getByRole('link', { name: 'Sign in again' }).click();
  await app.signIn(name);
  await app.expectSynced();
  await expect(app.item('Before')).toContainText('then edited after the session ended');

  // Another device of the same person receives the edit made while signed out.
  const other = new NotesApp(await (await page.context().browser()!.newContext()).newPage());
  await other.signIn(name);
  await other.syncNow();
  await expect(other.item('Before')).toContainText('then edited after the session ended');
});

test('each page is its own document: the forms link to each other, and an unknown path says so', async ({ page }) => {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto('/signin');
  await expect(page.locator('.auth-form[data-ready=true] h1')).toHaveText('Sign in to notesync');
  await page.getByRole('link', { name: 'Create an account' }).click();
  await page.waitForURL((url) => url.pathname === '/signup');
  await expect(page.locator('.auth-form[data-ready=true] h1')).toHaveText('Create your notesync account');
  await page.getByRole('link', { name: 'Sign in' }).click();
  await page.waitForURL((url) => url.pathname === '/signin');
  await expect(page.locator('.auth-form[data-ready=true]')).toBeVisible();

  const missing = await page.goto('/no/such/page');
  expect(missing?.status()).toBe(404);
  await expect(page.locator('main.not-found')).toContainText('Page not found.');
  await page.getByRole('link', { name: 'Open your notes' }).click();
  // Signed out, the notes page sends the visitor on to sign in.
  await page.waitForURL((url) => url.pathname === '/signin');
  expect(errors).toEqual([]);
});

test('changing the password signs the other devices out; sign out everywhere signs out every device', async ({
  browser,
}) => {
  // Three devices and two sessions ended, each seen through a sync.
  test.setTimeout(120_000);
  const a = await device(browser);
  const b = await device(browser);
  const name = (await a.app.page.getByTestId('account-name').textContent()) ?? '';
  const newPassword = 'a brand new password';

  // On A: Account, Change password.
  await a.app.page.getByTestId('account-settings').locator('summary').click();
  await a.app.page.locator('#current-password').fill(PASSWORD);
  await a.app.page.locator('#new-password').fill(newPassword);
  await a.app.page.locator('#change-password button[type=submit]').click();
  await expect(a.app.page.getByTestId('account-message')).toContainText('Password changed');

  // B's session ended: its next sync says so, and its edit is kept.
  await b.app.create('Written on B after the change', 'kept here');
  await expect(b.app.page.getByTestId('session-ended')).toBeVisible({ timeout: 20_000 });
  await expect(b.app.item('Written on B after the change')).toBeVisible();
  // A goes on syncing under its renewed session.
  await a.app.create('Written on A after the change', 'synced');
  await a.app.expectSynced();

  // The old password no longer signs in; the new one does.
  const c = await browser.newContext();
  const cApp = new NotesApp(await c.newPage());
  await cApp.page.goto('/signin');
  await expect(cApp.page.locator('.auth-form[data-ready=true]')).toBeVisible();
  await cApp.page.locator('#account-name').fill(name);
  await cApp.page.locator('#account-password').fill(PASSWORD);
  await cApp.page.locator('.auth-form button[type=submit]').click();
  await expect(cApp.page.getByTestId('auth-error')).toBeVisible();
  await cApp.signIn(name, newPassword);
  await expect(cApp.item('Written on A after the change')).toBeVisible({ timeout: 20_000 });

  // On A: Sign out everywhere. A opens the sign-in page; C's session ended.
  a.app.page.once('dialog', (dialog) => dialog.accept());
  await a.app.page.locator('#sign-out-everywhere').click();
  await a.app.page.waitForURL((url) => url.pathname === '/signin');
  await cApp.create('Written on C after signing out everywhere', 'kept here');
  await expect(cApp.page.getByTestId('session-ended')).toBeVisible({ timeout: 20_000 });
  await c.close();
});
