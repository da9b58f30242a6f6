// An account at its quota: the note over it is kept on the device, the
// person is told why, and once they free space it syncs by itself.
import { expect, test } from '@playwright/test';
import { device } from '../fixtures/app';
import { OwnServer } from '../fixtures/server';

test('a note over the quota is kept, explained, and synced once space is freed', async ({ browser }) => {
  test.setTimeout(120_000);
  const server = new OwnServer(3205, ['--quota-notes', '2']);
  await server.start();
  try {
    const a = await device(browser, { baseURL: server.baseURL });
    await a.app.create('First', 'fits');
    await a.app.create('Second', 'fits');
    await a.app.expectSynced();
    await a.app.create('Third', 'over the quota');
    await expect(a.app.syncStatus).toHaveAttribute('data-state', 'error', { timeout: 20_000 });
    await expect(a.app.syncStatus).toContainText('limit of 2 notes');
    await expect(a.app.syncStatus).toContainText('1 change waiting');
    // The text is kept on this device, through a reload.
    await a.app.reload();
    await expect(a.app.item('Third')).toBeVisible();

    // Another device sees only what the server took.
    const b = await device(browser, { baseURL: server.baseURL });
    await b.app.expectSynced();
    expect((await b.app.titles()).sort()).toEqual(['First', 'Second']);

    // Freeing space: the delete goes through and the waiting note follows,
    // with no edit of its own.
    await a.app.item('First').click();
    await a.app.deleteButton.click();
    await a.app.expectSynced();
    await expect.poll(async () => (await b.app.titles()).sort(), { timeout: 30_000 }).toEqual([
      'Second',
      'Third',
    ]);
  } finally {
    await server.dispose();
  }
});
