import { test, expect, type BrowserContext } from '@playwright/test';
import { NotesApp, device } from '../fixtures/app';

/** Opens another tab of the same browser on the notes page. */
async function tab(context: BrowserContext): Promise<NotesApp> {
  const app = new NotesApp(await context.newPage());
  await app.page.goto('/');
  await app.waitLoaded();
  return app;
}

function live(app: NotesApp) {
  return app.page.getByTestId('live-status');
}

/** The tabs' roles once every tab knows its own: 'true' for the leader. */
async function roles(apps: NotesApp[]): Promise<(string | null)[]> {
  return Promise.all(apps.map((a) => live(a).getAttribute('data-leader')));
}

test('an edit on one device shows on another within seconds: the poke delivers it', async ({ browser }) => {
  const a = await device(browser);
  const b = await device(browser);
  // While live, the periodic pull waits five minutes: only a poke can bring
  // the note within the few seconds allowed below.
  await expect(live(a.app)).toHaveAttribute('data-state', 'connected');
  await expect(live(b.app)).toHaveAttribute('data-state', 'connected');
  await expect(live(b.app)).toContainText('Live updates: on');
  await b.app.expectSynced();
  // The sync worker's requests are the context's too.
  const pulls: string[] = [];
  b.context.on('request', (r) => {
    if (r.url().includes('/api/pull')) pulls.push(r.url());
  });

  const title = `Poke ${Date.now()}`;
  await a.app.create(title, 'from the laptop');
  await a.app.expectSynced();
  await expect(b.app.item(title)).toContainText('from the laptop', { timeout: 5_000 });
  // Each poke carried its changes, and b had applied the ones before: no
  // pull was needed.
  expect(pulls).toEqual([]);
  await b.app.syncNow();
  await expect.poll(() => pulls.length, { message: 'a pull is seen when one is made' }).toBeGreaterThan(0);
  await a.context.close();
  await b.context.close();
});

test('of three tabs exactly one syncs, and closing it hands the sync over', async ({ browser }) => {
  // Watched from the start: the leader may open its stream before the first
  // page has finished loading.
  const streams: string[] = [];
  const a = await device(browser, {
    watch: (context) => context.on('request', (request) => {
      if (new URL(request.url()).pathname === '/api/events') streams.push(request.url());
    }),
  });
  const tabs = [a.app, await tab(a.context), await tab(a.context)];
  await expect.poll(() => roles(tabs)).not.toContain(null);
  expect((await roles(tabs)).filter((r) => r === 'true')).toHaveLength(1);
  for (const t of tabs) {
    await expect(live(t)).toHaveAttribute('data-state', 'connected');
  }
  // One live connection for the browser, however many tabs: only the leader
  // opened one, and the other tabs opened none.
  await a.app.page.waitForTimeout(2_000);
  expect(streams).toHaveLength(1);

  // An edit in a tab that does not sync still reaches the server.
  const other = await device(browser);
  const leaderIndex = (await roles(tabs)).indexOf('true');
  const follower = tabs[(leaderIndex + 1) % 3];
  const first = `Follower ${Date.now()}`;
  await follower.create(first, 'typed in a tab that does not sync');
  await follower.expectSynced();
  await expect(other.app.item(first)).toBeVisible({ timeout: 10_000 });

  // The leader's tab closes: another takes over within seconds and syncs.
  await tabs[leaderIndex].page.close();
  const left = tabs.filter((_, i) => i !== leaderIndex);
  await expect
    .poll(async () => (await roles(left)).filter((r) => r === 'true').length, { timeout: 10_000 })
    .toBe(1);
  for (const t of left) {
    await expect(live(t)).toHaveAttribute('data-state', 'connected');
  }
  const second = `After handover ${Date.now()}`;
  await left[0].create(second, 'still syncing');
  await left[0].expectSynced();
  await expect(other.app.item(second)).toBeVisible({ timeout: 10_000 });
  await a.context.close();
  await other.context.close();
});

test('a frozen leader tab lets go of the sync, and takes it back only if needed', async ({ browser }) => {
  const a = await device(browser);
  const tabs = [a.app, await tab(a.context)];
  await expect.poll(() => roles(tabs)).not.toContain(null);
  const leaderIndex = (await roles(tabs)).indexOf('true');
  const leader = tabs[leaderIndex];
  const follower = tabs[1 - leaderIndex];

  // The event Chromium sends a background tab it pauses. (CDP's
  // Page.setWebLifecycleState freezes a headless page without sending it,
  // so the test sends it as the browser would.)
  await leader.page.evaluate(() => document.dispatchEvent(new Event('freeze')));
  await expect(live(follower)).toHaveAttribute('data-leader', 'true', { timeout: 10_000 });
  await expect(live(follower)).toHaveAttribute('data-state', 'connected');

  await leader.page.evaluate(() => document.dispatchEvent(new Event('resume')));
  await expect(live(leader)).toHaveAttribute('data-leader', 'false', { timeout: 10_000 });
  await expect(live(follower)).toHaveAttribute('data-leader', 'true');
  await a.context.close();
});
