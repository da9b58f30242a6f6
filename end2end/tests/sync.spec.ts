import { test, expect } from '@playwright/test';
import { device } from '../fixtures/app';

test('a note created on one device appears on the other, and its delete too', async ({ browser }) => {
  const a = await device(browser);
  const b = await device(browser);
  const title = `Shared ${Date.now()}`;
  await a.app.create(title, 'written on A');
  await a.app.expectSynced();
  // The footer's count of waiting changes agrees with the indicator.
  await expect(a.app.workerStatus).toContainText('0 changes waiting to sync');

  await b.app.syncNow();
  await expect(b.app.item(title)).toContainText('written on A');

  await b.app.item(title).click();
  await b.app.deleteButton.click();
  await b.app.expectSynced();
  await a.app.syncNow();
  await expect(a.app.item(title)).toHaveCount(0);
  await a.context.close();
  await b.context.close();
});

test('edits made offline are kept, shown as waiting, and arrive when back online', async ({ browser }) => {
  const a = await device(browser);
  const b = await device(browser);
  const title = `Offline ${Date.now()}`;
  await a.app.create(title, 'online part');
  await a.app.expectSynced();

  await a.context.setOffline(true);
  await a.app.body.pressSequentially(', offline part');
  await a.app.expectSaved();
  await expect(a.app.syncStatus).toHaveAttribute('data-state', 'offline');
  await expect(a.app.syncStatus).toContainText('1 change waiting');

  await a.context.setOffline(false);
  await a.app.expectSynced();
  await expect(a.app.syncStatus).not.toContainText('waiting');

  await b.app.syncNow();
  await b.app.item(title).click();
  await expect(b.app.body).toHaveValue('online part, offline part');
  await a.context.close();
  await b.context.close();
});

test('concurrent offline edits: other places merge, the same words are flagged and resolved with nothing lost', async ({ browser }) => {
  const a = await device(browser);
  const b = await device(browser);
  const title = `Merge ${Date.now()}`;
  await a.app.create(title, 'one\ntwo\nthree');
  await a.app.expectSynced();
  await b.app.syncNow();
  await b.app.item(title).click();
  await expect(b.app.body).toHaveValue('one\ntwo\nthree');

  // Different lines, offline on both devices.
  await a.context.setOffline(true);
  await b.context.setOffline(true);
  await a.app.body.fill('ONE from A\ntwo\nthree');
  await b.app.body.fill('one\ntwo\nTHREE from B');
  await a.app.expectSaved();
  await b.app.expectSaved();
  await a.context.setOffline(false);
  await a.app.expectSynced();
  await b.context.setOffline(false);
  await b.app.expectSynced();
  await a.app.syncNow();
  for (const app of [a.app, b.app]) {
    await expect(app.body).toHaveValue('ONE from A\ntwo\nTHREE from B');
    await expect(app.conflict).toHaveCount(0);
  }

  // The same line, each adding to its end: both additions kept, no flag.
  await a.context.setOffline(true);
  await b.context.setOffline(true);
  await a.app.body.fill('ONE from A\ntwo, said A\nTHREE from B');
  await b.app.body.fill('ONE from A\ntwo, said B\nTHREE from B');
  await a.app.expectSaved();
  await b.app.expectSaved();
  await a.context.setOffline(false);
  await a.app.expectSynced();
  await b.context.setOffline(false);
  await b.app.expectSynced();
  await a.app.syncNow();
  for (const app of [a.app, b.app]) {
    await expect(app.body).toHaveValue('ONE from A\ntwo, said A, said B\nTHREE from B');
    await expect(app.conflict).toHaveCount(0);
  }

  // The same words changed on both: both versions of the line kept in the
  // text, one after the other (no conflict markers), flagged, and each
  // version shown whole.
  await a.context.setOffline(true);
  await b.context.setOffline(true);
  await a.app.body.fill('ONE from A\nTWO for A\nTHREE from B');
  await b.app.body.fill('ONE from A\ndeux for B\nTHREE from B');
  await a.app.expectSaved();
  await b.app.expectSaved();
  await a.context.setOffline(false);
  await a.app.expectSynced();
  await b.context.setOffline(false);
  await b.app.expectSynced();
  await a.app.syncNow();
  for (const app of [a.app, b.app]) {
    await expect(app.conflict).toBeVisible();
    await expect(app.body).toHaveValue('ONE from A\nTWO for A\ndeux for B\nTHREE from B');
    await expect(app.page.getByTestId('conflict-server')).toContainText('TWO for A');
    await expect(app.page.getByTestId('conflict-client')).toContainText('deux for B');
  }
  // Each device knows which version it wrote.
  await expect(a.app.page.getByTestId('conflict-server')).toContainText('Your version (this device)');
  await expect(b.app.page.getByTestId('conflict-client')).toContainText('Your version (this device)');

  // B keeps its own; both devices end with it and no flag.
  await b.app.page.getByRole('button', { name: 'Keep mine' }).click();
  await expect(b.app.conflict).toHaveCount(0);
  await expect(b.app.body).toHaveValue('ONE from A\ndeux for B\nTHREE from B');
  await b.app.expectSynced();
  await a.app.syncNow();
  await expect(a.app.conflict).toHaveCount(0);
  await expect(a.app.body).toHaveValue('ONE from A\ndeux for B\nTHREE from B');
  await a.context.close();
  await b.context.close();
});

test('an edit from another device lands while typing: the caret stays, both edits are kept', async ({ browser }) => {
  const a = await device(browser);
  const b = await device(browser);
  const title = `Typing ${Date.now()}`;
  await a.app.create(title, 'one\ntwo\nthree');
  await a.app.expectSynced();
  await b.app.syncNow();
  await b.app.item(title).click();
  await b.app.body.fill('one\ntwo\nthree, from B');
  await b.app.expectSynced();

  // A types at the start of its first line, slowly enough that each key is
  // saved and synced on its own, so B's line arrives mid-sentence.
  await a.app.body.focus();
  await a.app.page.keyboard.press('Control+Home');
  for (const key of 'A: ') {
    await a.app.page.keyboard.type(key);
    await a.app.page.waitForTimeout(450);
  }
  await expect(a.app.body).toHaveValue('A: one\ntwo\nthree, from B', { timeout: 10_000 });
  // The caret stayed where A was typing, so the rest lands there too.
  await a.app.page.keyboard.type('first ');
  await a.app.expectSaved();
  await a.app.expectSynced();
  await expect(a.app.body).toHaveValue('A: first one\ntwo\nthree, from B');
  await expect(a.app.conflict).toHaveCount(0);

  await b.app.syncNow();
  await expect(b.app.body).toHaveValue('A: first one\ntwo\nthree, from B');
  await a.context.close();
  await b.context.close();
});

test('a push whose answer is lost loses nothing: typing meanwhile follows it, and no conflict appears', async ({ browser }) => {
  const a = await device(browser);
  const b = await device(browser);
  const title = `In doubt ${Date.now()}`;
  await a.app.create(title, 'first part');
  await a.app.expectSynced();

  // The next push reaches the server, which applies it, but its answer is
  // held and then lost: the worker cannot know whether it was applied.
  let release!: () => void;
  const held = new Promise<void>((resolve) => { release = resolve; });
  let pushes = 0;
  await a.context.route('**/api/push', async (route) => {
    pushes += 1;
    if (pushes > 1) return route.continue();
    await route.fetch();
    await held;
    await route.abort('connectionreset');
  });
  await a.app.body.pressSequentially(', second part');
  await expect.poll(() => pushes).toBeGreaterThan(0);
  // Typed while the push is on the wire: folded into the same change.
  await a.app.body.pressSequentially(', third part');
  await a.app.expectSaved();
  release();

  // The retry is answered as a duplicate, and the later typing is pushed
  // after it as its own change.
  await a.app.expectSynced();
  await a.context.unroute('**/api/push');
  expect(pushes).toBeGreaterThan(1);
  await b.app.syncNow();
  await b.app.item(title).click();
  await expect(b.app.body).toHaveValue('first part, second part, third part');
  await expect(b.app.conflict).toHaveCount(0);
  await a.app.reload();
  await a.app.item(title).click();
  await expect(a.app.body).toHaveValue('first part, second part, third part');
  await expect(a.app.conflict).toHaveCount(0);
  await a.context.close();
  await b.context.close();
});
