import { test, expect, type BrowserContext } from '@playwright/test';
import { NotesApp, device } from '../fixtures/app';

// What a person types stays theirs, whole: concurrent typing merges word by
// word and never writes conflict markers, and a device with a wrong clock
// cannot decide later races.

const MARKER = /^(<<<<<<<|=======|>>>>>>>)/m;

// Each test types a few hundred keys on two pages and syncs several times:
// more than the default minute on a busy two-core machine.
test.describe.configure({ timeout: 150_000 });

/** The words of a text, as the person would read them. */
function words(text: string): string[] {
  return text.split(/\s+/).filter((w) => w.length > 0);
}

/** Opens another tab of the same browser on the notes page. */
async function tab(context: BrowserContext): Promise<NotesApp> {
  const app = new NotesApp(await context.newPage());
  await app.page.goto('/');
  await app.waitLoaded();
  return app;
}

/** Types ` word` at the end of the body, key by key, as a person does. */
async function typeAtEnd(app: NotesApp, word: string) {
  await app.body.focus();
  await app.page.keyboard.press('Control+End');
  await app.page.keyboard.type(` ${word}`, { delay: 15 });
}

/** Types `word ` at the start of the body, key by key. */
async function typeAtStart(app: NotesApp, word: string) {
  await app.body.focus();
  await app.page.keyboard.press('Control+Home');
  await app.page.keyboard.type(`${word} `, { delay: 15 });
}

test('two devices typing into one line at once, at its two ends, keep every word with no marker and no conflict', async ({ browser }) => {
  const a = await device(browser);
  const b = await device(browser);
  const title = `One line ${Date.now()}`;
  await a.app.create(title, 'start');
  await a.app.expectSynced();
  await b.app.syncNow();
  await b.app.item(title).click();
  await expect(b.app.body).toHaveValue('start');

  // Both online, typing at the same time into the same line, A at its
  // start and B at its end, with no pause for sync to catch up: their
  // pushes cross, and each device's text arrives while the other types.
  const typed: string[] = [];
  for (let i = 1; i <= 12; i++) {
    typed.push(`a${i}`, `b${i}`);
    await Promise.all([typeAtStart(a.app, `a${i}`), typeAtEnd(b.app, `b${i}`)]);
  }
  await a.app.expectSaved();
  await b.app.expectSaved();
  await a.app.syncNow();
  await b.app.syncNow();
  await a.app.syncNow();

  const final = await a.app.body.inputValue();
  await expect(b.app.body).toHaveValue(final);
  expect(final).not.toMatch(MARKER);
  expect(final.split('\n')).toHaveLength(1);
  // Every word typed is there exactly once, and nothing else but 'start'.
  expect(words(final).sort()).toEqual(['start', ...typed].sort());
  for (const app of [a.app, b.app]) await expect(app.conflict).toHaveCount(0);
  await a.context.close();
  await b.context.close();
});

test('two tabs typing into one note with no pause keep every word, unspliced', async ({ browser }) => {
  const a = await device(browser);
  const title = `Two tabs ${Date.now()}`;
  await a.app.create(title, 'start');
  await a.app.expectSynced();
  const second = await tab(a.context);
  await second.item(title).click();
  await expect(second.body).toHaveValue('start');

  // Alternately, each tab types a word at the end as soon as the other is
  // done: every save overlaps the other tab's.
  const typed: string[] = [];
  for (let i = 100; i < 125; i++) {
    typed.push(`a${i}`, `b${i}`);
    await typeAtEnd(a.app, `a${i}`);
    await typeAtEnd(second, `b${i}`);
  }
  await a.app.expectSaved();
  await second.expectSaved();
  await a.app.syncNow();
  await expect
    .poll(async () => words(await second.body.inputValue()).length, { timeout: 15_000 })
    .toBe(typed.length + 1);

  for (const app of [a.app, second]) {
    const text = await app.body.inputValue();
    expect(text).not.toMatch(MARKER);
    // No word spliced into another ("b115a114"), none lost, none doubled.
    expect(words(text).sort()).toEqual(['start', ...typed].sort());
    await expect(app.conflict).toHaveCount(0);
  }
  // The server has the same text: a new device downloads it.
  const b = await device(browser);
  await b.app.item(title).click();
  expect(words(await b.app.body.inputValue()).sort()).toEqual(['start', ...typed].sort());
  await a.context.close();
  await b.context.close();
});

test('a device whose clock is a day ahead cannot decide a later rename, and the losing title is kept', async ({ browser }) => {
  const DAY = 24 * 60 * 60 * 1000;
  // The fast device's page clock runs a day ahead: its edits are timed so.
  const fast = await device(browser, {
    watch: (context) =>
      void context.addInitScript((offset) => {
        const realNow = Date.now;
        Date.now = () => realNow() + offset;
      }, DAY),
  });
  const a = await device(browser);
  const b = await device(browser);
  const body = 'what we agreed';
  await fast.app.create('Plan', body);
  await fast.app.expectSynced();
  for (const app of [a.app, b.app]) {
    await app.syncNow();
    await app.item('Plan').click();
  }
  // Past the server's allowance for fast clocks, two correct devices rename
  // the note from the same revision, A first, then B.
  await a.app.page.waitForTimeout(6_000);
  await b.context.setOffline(true);
  await a.app.title.fill('Plan (early)');
  await a.app.expectSaved();
  await a.app.expectSynced();
  await a.app.page.waitForTimeout(500);
  await b.app.title.fill('Plan (late)');
  await b.app.expectSaved();
  await b.context.setOffline(false);
  await b.app.expectSynced();

  // The later rename wins everywhere, the fast device included...
  for (const app of [a.app, b.app, fast.app]) {
    await app.syncNow();
    await expect(app.title).toHaveValue('Plan (late)');
    await expect(app.body).toHaveValue(body);
  }
  // ...and the earlier one is not dropped: it is shown to compare.
  await expect(a.app.conflict).toBeVisible();
  await expect(a.app.page.getByTestId('conflict-server')).toContainText('Plan (early)');
  await expect(a.app.page.getByTestId('conflict-client')).toContainText('Plan (late)');
  for (const d of [a, b, fast]) await d.context.close();
});

test('keep both: the other version of a conflict becomes a note of its own on every device', async ({ browser }) => {
  const a = await device(browser);
  const b = await device(browser);
  const title = `Both ${Date.now()}`;
  await a.app.create(title, 'alpha beta');
  await a.app.expectSynced();
  await b.app.syncNow();
  await b.app.item(title).click();
  await a.context.setOffline(true);
  await b.context.setOffline(true);
  await a.app.body.fill('alpha GAMMA');
  await b.app.body.fill('alpha delta');
  await a.app.expectSaved();
  await b.app.expectSaved();
  await a.context.setOffline(false);
  await a.app.expectSynced();
  await b.context.setOffline(false);
  await b.app.expectSynced();
  await expect(b.app.conflict).toBeVisible();

  await b.app.page.getByRole('button', { name: 'Keep both' }).click();
  await expect(b.app.conflict).toHaveCount(0);
  await expect(b.app.body).toHaveValue('alpha delta');
  await expect(b.app.item(`${title} (other version)`)).toBeVisible();
  await b.app.expectSynced();
  await a.app.syncNow();
  await expect(a.app.conflict).toHaveCount(0);
  await a.app.item(`${title} (other version)`).click();
  await expect(a.app.body).toHaveValue('alpha GAMMA');
  const original = a.app.items.filter({
    has: a.app.page.locator('.note-title', { hasText: new RegExp(`^${title}$`) }),
  });
  await original.click();
  await expect(a.app.body).toHaveValue('alpha delta');
  await a.context.close();
  await b.context.close();
});
