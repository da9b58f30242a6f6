import { test, expect, type Page } from '@playwright/test';
import { appendFileSync } from 'node:fs';
import * as path from 'node:path';
import { NotesApp, device } from '../fixtures/app';
import { OwnServer } from '../fixtures/server';

/** Waits until a service worker controls the page. */
async function controlled(page: Page) {
  await page.waitForFunction(() => navigator.serviceWorker?.controller != null, null, {
    timeout: 30_000,
  });
}

/** The names of the service worker's shell caches. */
async function shellCaches(page: Page): Promise<string[]> {
  return page.evaluate(async () =>
    (await caches.keys()).filter((name) => name.startsWith('notesync-shell-')),
  );
}

test('the manifest is valid and the app is installable', async ({ page, request }) => {
  const res = await request.get('/manifest.webmanifest');
  expect(res.ok()).toBe(true);
  expect(res.headers()['content-type']).toContain('manifest+json');
  const manifest = await res.json();
  expect(manifest).toMatchObject({ name: 'notesync', display: 'standalone', start_url: '/' });
  for (const [size, purpose] of [
    ['192x192', 'any'],
    ['512x512', 'any'],
    ['192x192', 'maskable'],
    ['512x512', 'maskable'],
  ]) {
    const icon = manifest.icons.find((i: any) => i.sizes === size && i.purpose === purpose);
    expect(icon, `a ${purpose} icon of ${size}`).toBeTruthy();
    const png = await request.get(icon.src);
    expect(png.headers()['content-type']).toBe('image/png');
    // A PNG's width and height are in its IHDR chunk, at bytes 16 and 20.
    const body = await png.body();
    expect([body.readUInt32BE(16), body.readUInt32BE(20)].join('x')).toBe(size);
  }

  const app = new NotesApp(page);
  await app.open();
  await controlled(page);
  // Chromium's own verdict, as its install prompt uses it.
  const cdp = await page.context().newCDPSession(page);
  const parsed = await cdp.send('Page.getAppManifest');
  expect(parsed.errors).toEqual([]);
  expect(parsed.url).toMatch(/\/manifest\.webmanifest$/);
  // Playwright's contexts are incognito profiles, which Chromium never
  // offers to install into; that is the only objection allowed.
  const { installabilityErrors } = await cdp.send('Page.getInstallabilityErrors');
  expect(installabilityErrors.filter((e) => e.errorId !== 'in-incognito')).toEqual([]);
});

test('the service worker is active, controls the page and precaches the shell', async ({ page }) => {
  const app = new NotesApp(page);
  await app.open();
  await controlled(page);
  const registration = await page.evaluate(async () => {
    const r = await navigator.serviceWorker.getRegistration();
    return { state: r?.active?.state, script: r?.active?.scriptURL, scope: r?.scope };
  });
  expect(registration.state).toBe('activated');
  expect(registration.script).toMatch(/\/sw\.js$/);
  expect(new URL(registration.scope!).pathname).toBe('/');

  const shell = await shellCaches(page);
  expect(shell).toHaveLength(1);
  const cached = await page.evaluate(async (name) => {
    const cache = await caches.open(name);
    return (await cache.keys()).map((r) => new URL(r.url).pathname);
  }, shell[0]);
  for (const file of ['/', '/signin', '/pkg/notesync.js', '/pkg/notesync.wasm', '/pkg/notesync.css', '/pkg/__wasm_split.js', '/worker.js']) {
    expect(cached).toContain(file);
  }
  // The import and export chunk, so that both work offline.
  expect(cached.filter((p) => /^\/pkg\/split_transfer\.[0-9a-f]{16}\.wasm$/.test(p))).toHaveLength(1);
  expect(cached.filter((p) => p.startsWith('/api/'))).toEqual([]);

  // The script is served fresh, never from an HTTP cache.
  const script = await page.request.get('/sw.js');
  expect(script.headers()['cache-control']).toBe('no-cache');
});

test('offline cold start: the notes show, an edit is kept and syncs once back online', async ({ browser }) => {
  // Two devices, a server restart and a debug wasm of tens of MB.
  test.setTimeout(180_000);
  const server = new OwnServer(3121);
  await server.start();
  try {
    const a = await device(browser, { baseURL: server.baseURL });
    await a.app.create('Plane', 'window seat');
    await a.app.expectSynced();
    await controlled(a.app.page);

    // The network is gone and so is the server.
    await server.stop();
    await a.context.setOffline(true);
    await a.app.page.reload();
    await a.app.waitLoaded();
    await expect(a.app.item('Plane')).toContainText('window seat');
    await a.app.item('Plane').click();
    await a.app.body.pressSequentially(', aisle later');
    await a.app.expectSaved();
    await expect(a.app.syncStatus).toHaveAttribute('data-state', 'offline');
    await expect(a.app.syncStatus).toContainText('1 change waiting');
    // The import's code, loaded on first use, comes from the precache.
    await a.app.page.locator('#import-file').setInputFiles({
      name: 'notes.json',
      mimeType: 'application/json',
      buffer: Buffer.from(JSON.stringify([{ title: 'Packing', body: 'passport' }])),
    });
    await expect(a.app.importStatus).toHaveText('Imported 1 note');
    await expect(a.app.syncStatus).toContainText('2 changes waiting');
    // So does the preview's.
    await a.app.item('Plane').click();
    await a.app.previewToggle.click();
    await expect(a.app.preview).toContainText('window seat, aisle later');
    await a.app.previewToggle.click();
    // An address the cache has no copy of opens the notes page, which works.
    await a.app.page.goto('/no/such/page');
    await a.app.waitLoaded();
    await expect(a.app.item('Plane')).toContainText('window seat, aisle later');
    await a.app.page.goto('/');
    await a.app.waitLoaded();

    await server.start();
    await a.context.setOffline(false);
    await a.app.expectSynced();
    const b = await device(browser, { baseURL: server.baseURL });
    await b.app.item('Plane').click();
    await expect(b.app.body).toHaveValue('window seat, aisle later');
    await expect(b.app.item('Packing')).toContainText('passport');
    await a.context.close();
    await b.context.close();
  } finally {
    await server.dispose();
  }
});

test('after a new build the update prompt appears, and Reload switches to it', async ({ browser }) => {
  // The new worker precaches the whole (debug, tens of MB) shell again.
  test.setTimeout(180_000);
  const server = new OwnServer(3122);
  await server.start();
  try {
    const a = await device(browser, { baseURL: server.baseURL });
    const page = a.app.page;
    await controlled(page);
    const before = await shellCaches(page);
    expect(before).toHaveLength(1);
    const banner = page.getByTestId('update-ready');
    await expect(banner).toBeHidden();

    appendFileSync(path.join(server.siteRoot, 'pkg', 'notesync.css'), '\n/* a new build */\n');
    await a.app.reload();
    await expect(banner).toBeVisible({ timeout: 30_000 });
    await expect(banner).toContainText('new version');

    await banner.getByRole('button', { name: 'Reload' }).click();
    // The new worker took over, removed the old shell, and the page reloaded.
    await expect
      .poll(() => shellCaches(page).catch(() => []), { timeout: 30_000 })
      .toEqual([expect.not.stringMatching(before[0])]);
    await a.app.waitLoaded();
    await expect(banner).toBeHidden();
    await a.context.close();
  } finally {
    await server.dispose();
  }
});
